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
from webhook.core.parsed import Needed, ParsedScripts, Unknown, known
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
    with pytest.raises(Unknown):
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


# Names a module of the core may bind at its top level to a mutable value: none.
_MUTABLE_CALLS = frozenset(
    {"dict", "list", "set", "OrderedDict", "defaultdict", "deque", "Counter"}
)
_CACHES = frozenset({"lru_cache", "cache", "cached_property"})


def _mutable_globals(tree: ast.Module) -> list[str]:
    found: list[str] = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            for decorator in node.decorator_list:
                target = decorator.func if isinstance(decorator, ast.Call) else decorator
                name = (
                    target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")
                )
                if name in _CACHES:
                    found.append(f"{node.name}: @{name}")
        value = node.value if isinstance(node, (ast.Assign, ast.AnnAssign)) else None
        if value is None:
            continue
        call = value.func if isinstance(value, ast.Call) else None
        called = call.attr if isinstance(call, ast.Attribute) else getattr(call, "id", "")
        if isinstance(value, (ast.Dict, ast.List, ast.Set)) or called in _MUTABLE_CALLS | _CACHES:
            found.append(f"line {node.lineno}: {ast.unparse(node)[:60]}")
        if isinstance(call, ast.Call):  # lru_cache(...)(function)
            inner = call.func
            if getattr(inner, "id", getattr(inner, "attr", "")) in _CACHES:
                found.append(f"line {node.lineno}: {ast.unparse(node)[:60]}")
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
        "g = functools.lru_cache(maxsize=2)(len)",
        "_Q = deque()",
    ],
)
def test_the_global_state_scan_finds_what_is_planted(planted: str) -> None:
    assert _mutable_globals(ast.parse(planted))
