"""The parsed-script store and the scripts a pod needs: owned by the caller, bounded, and the
exact set `select` reads."""

from __future__ import annotations

import ast
import time
from typing import Any

import jsonpatch
import pytest

from tests.support.builders import REPO, admit, example, pod
from webhook.core import names
from webhook.core.model import DEFAULT_CONTEXT, Context, Options
from webhook.core.mutate import decide
from webhook.core.names import Rule
from webhook.core.parsed import Needed, NotParsed, ParsedScripts, known
from webhook.core.patch import to_json
from webhook.core.read import read_pod
from webhook.core.script import ScriptRewrite, parser_failed, rewrite_script
from webhook.core.selection import scripts_needed
from webhook.core.view import pod_view

RULES = frozenset(Rule)
UNCHANGED = ScriptRewrite(None, (), "")
HEAD = {"name": names.HEAD_CONTAINER, "command": ["bash", "-c"]}
SCRIPT = "python -m huggingfaceserver --x\n"


def test_two_stores_never_see_each_others_scripts() -> None:
    mine, theirs = ParsedScripts(), ParsedScripts()
    mine.put(SCRIPT, RULES, parser_failed())
    assert theirs.get(SCRIPT, RULES) is None
    assert theirs.rewrite(SCRIPT, RULES).script is not None  # parsed, not the other's failure
    assert mine.rewrite(SCRIPT, RULES).reason is names.Reason.PARSER_FAILED


def test_the_store_drops_the_least_recently_used_past_its_budget() -> None:
    store = ParsedScripts(budget=30)
    for name in ("a" * 10, "b" * 10, "c" * 10):
        store.put(name, RULES, UNCHANGED)
    assert store.get("a" * 10, RULES) is UNCHANGED  # now the most recently used
    store.put("d" * 10, RULES, UNCHANGED)
    assert [store.get(n * 10, RULES) is not None for n in "abcd"] == [True, False, True, True]
    store.put("e" * 50, RULES, UNCHANGED)  # over the budget alone: kept, every other dropped
    assert [store.get(n * 10, RULES) is not None for n in "acd"] == [False, False, False]
    assert store.get("e" * 50, RULES) is UNCHANGED


def test_an_outcome_that_does_not_last_is_forgotten_at_its_time() -> None:
    store = ParsedScripts()
    store.put(SCRIPT, RULES, parser_failed(), until=time.monotonic() + 60)
    assert store.get(SCRIPT, RULES) is not None
    store.put(SCRIPT, RULES, parser_failed(), until=time.monotonic())
    assert store.get(SCRIPT, RULES) is None
    assert len(store) == 0


def test_known_answers_only_what_was_parsed_first() -> None:
    rewrites = known({(SCRIPT, RULES): UNCHANGED})
    assert rewrites(SCRIPT, RULES) is UNCHANGED
    with pytest.raises(NotParsed):
        rewrites("echo other\n", RULES)


def _status() -> str:
    """The status annotation admission records on a repaired legacy head."""
    head = _isvc_pod({**HEAD, "args": [SCRIPT, "--a"]})
    repaired = jsonpatch.apply_patch(head, to_json(admit(head).patch))
    return str(repaired["metadata"]["annotations"][names.STATUS_ANNOTATION])


def _isvc_pod(*containers: dict[str, Any], **metadata: Any) -> dict[str, Any]:
    made = pod(containers=list(containers))
    made["metadata"].update(metadata)
    return made


@pytest.mark.parametrize(
    ("given", "context", "needed"),
    [
        ("legacy head", DEFAULT_CONTEXT, [(SCRIPT, "kserve-container")]),
        ("script in command", DEFAULT_CONTEXT, [(SCRIPT, "kserve-container")]),
        ("not a shell", DEFAULT_CONTEXT, []),
        ("script over the limit", DEFAULT_CONTEXT, []),
        ("already migrated", DEFAULT_CONTEXT, []),
        ("not KServe", DEFAULT_CONTEXT, []),
        ("an update", Context(operation="UPDATE"), []),
        ("system namespace", Context(namespace="kube-system"), []),
        (
            "two targets",
            DEFAULT_CONTEXT,
            [(SCRIPT, "kserve-container"), ("ray\n", "worker-container")],
        ),
    ],
)
def test_the_scripts_a_pod_needs_are_those_select_reads(
    given: str, context: Context, needed: list[tuple[str, str]]
) -> None:
    pods = {
        "legacy head": _isvc_pod({**HEAD, "args": [SCRIPT, "--a"]}),
        "script in command": _isvc_pod({**HEAD, "command": ["bash", "-c", SCRIPT, "x"]}),
        "not a shell": _isvc_pod({**HEAD, "command": ["python"], "args": [SCRIPT]}),
        "script over the limit": _isvc_pod({**HEAD, "args": ["#" * 200 + "\n" + SCRIPT]}),
        "already migrated": _isvc_pod(
            {**HEAD, "args": [SCRIPT]}, annotations={names.STATUS_ANNOTATION: _status()}
        ),
        "not KServe": {"metadata": {"name": "p"}, "spec": {"containers": [HEAD]}},
        "an update": _isvc_pod({**HEAD, "args": [SCRIPT]}),
        "system namespace": _isvc_pod({**HEAD, "args": [SCRIPT]}),
        "two targets": _isvc_pod(
            {**HEAD, "args": [SCRIPT]},
            {"name": names.WORKER_CONTAINER, "command": ["bash", "-c"], "args": ["ray\n"]},
        ),
    }
    facts = read_pod(pod_view(pods[given]), context=context, options=Options(max_script_bytes=100))
    found = scripts_needed(facts)
    assert [(n.script, n.container) for n in found] == needed
    assert all(n.rules == RULES for n in found)
    # `select` reads these and no other: `known` refuses anything else.
    parsed = {n.key: rewrite_script(n.script, n.rules) for n in found}
    decide(facts, rewrites=known(parsed))


def test_the_scripts_of_a_corpus_pod_are_read_once_each() -> None:
    facts = read_pod(
        pod_view(example("legacy-head-pod.yaml")), context=DEFAULT_CONTEXT, options=Options()
    )
    [found] = scripts_needed(facts)
    assert isinstance(found, Needed)
    assert found.container == names.HEAD_CONTAINER


# What a module or class of the core may not bind, what it may not import, and what no function
# may take as a default: anything that would hold state from one call, or one owner, to the next.
_MUTABLE_CALLS = frozenset(
    {
        "dict", "list", "set", "bytearray", "OrderedDict", "defaultdict", "deque", "Counter",
        "Memo", "ParsedScripts", "Decisions", "local", "lru_cache", "cache", "cached_property",
    }
)  # fmt: skip
_MUTABLE_NODES = (ast.Dict, ast.List, ast.Set, ast.DictComp, ast.ListComp, ast.SetComp)
_CACHES = frozenset({"lru_cache", "cache", "cached_property"})


def _called(node: ast.AST) -> str:
    target = node.func if isinstance(node, ast.Call) else node
    while isinstance(target, ast.Call):  # lru_cache(maxsize=2)(len)
        target = target.func
    if isinstance(target, ast.Attribute):
        return target.attr
    return target.id if isinstance(target, ast.Name) else ""


def _mutable(value: ast.AST) -> bool:
    if isinstance(value, _MUTABLE_NODES):
        return True
    if isinstance(value, ast.Tuple):
        return any(_mutable(item) for item in value.elts)
    return isinstance(value, ast.Call) and _called(value) in _MUTABLE_CALLS


def _bound(body: list[ast.stmt], where: str) -> list[str]:
    """What the statements bind, at module or class level, through if/try/with/for."""
    found: list[str] = []
    for node in body:
        value = node.value if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)) else None
        if value is not None and _mutable(value):
            found.append(f"{where}line {node.lineno}: {ast.unparse(node)[:60]}")
        if isinstance(node, ast.ClassDef):
            found += _bound(node.body, f"{where}{node.name}.")
        for field in ("body", "orelse", "finalbody", "handlers"):
            nested = getattr(node, field, None)
            if isinstance(nested, list) and not isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                found += _bound([n for n in nested if isinstance(n, ast.stmt)], where)
            if field == "handlers" and isinstance(nested, list):
                for handler in nested:
                    found += _bound(handler.body, where)
    return found


def _mutable_globals(tree: ast.Module) -> list[str]:
    found = _bound(tree.body, "")
    for node in ast.walk(tree):
        if isinstance(node, ast.Global):
            found.append(f"line {node.lineno}: global {', '.join(node.names)}")
        if isinstance(node, ast.ImportFrom) and node.module == "functools":
            found += [f"imports {a.name}" for a in node.names if a.name in _CACHES]
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            defaults = [*node.args.defaults, *(d for d in node.args.kw_defaults if d)]
            found += [f"{node.name}: a mutable default" for d in defaults if _mutable(d)]
            found += [
                f"{node.name}: @{_called(d)}" for d in node.decorator_list if _called(d) in _CACHES
            ]
    return found


def test_the_core_holds_no_mutable_global_state() -> None:
    found = {
        path.name: bad
        for path in sorted((REPO / "webhook" / "core").glob("*.py"))
        if (bad := _mutable_globals(ast.parse(path.read_text())))
    }
    assert found == {}


@pytest.mark.parametrize(
    "planted",
    [
        "_SEEN = {}",
        "_SEEN: dict[str, int] = dict()",
        "@lru_cache\ndef f() -> None: ...",
        "@functools.cache\ndef f() -> None: ...",
        "g = functools.lru_cache(maxsize=2)(len)",
        "from functools import lru_cache as remember",
        "_Q = deque()",
        "_S = {k: 1 for k in 'ab'}",
        "_A, _B = [], 0",
        "class C:\n    seen: list[int] = []",
        "try:\n    _X = []\nexcept ImportError:\n    pass",
        "try:\n    pass\nexcept ImportError:\n    _X = []",
        "if True:\n    _M = Memo(4)",
        "_STORE = ParsedScripts()",
        "_T = threading.local()",
        "def f(seen={}) -> None: ...",
        "def f() -> None:\n    global _N\n    _N += 1",
    ],
)
def test_the_global_state_scan_finds_what_is_planted(planted: str) -> None:
    assert _mutable_globals(ast.parse(planted))
