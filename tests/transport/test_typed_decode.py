"""The typed decode of `/mutate` against the full parse it replaced: for every body, both give
the same review (or the same 400, naming the same field, echoing the same uid), and so the
same decision, patch and warnings. Generated reviews (valid, invalid, deeply nested, huge, wrong
types, missing and unknown fields, both API versions), every golden and the whole corpus."""

from __future__ import annotations

import copy
import json
import os
import sys
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support import jsongen, kserve, llmisvc
from tests.support.builders import TESTDATA, data_pod, review
from webhook.core.admission import API_VERSIONS, ReviewRequest
from webhook.core.mutate import mutate
from webhook.core.script import rewrite_script
from webhook.core.view import ReviewView
from webhook.transport.http import RequestError, decode_review, parse_body

SERVER_RECURSION_LIMIT = 1000  # CPython's default, which `serve` keeps
EXAMPLES = 5_000 if os.environ.get("HYPOTHESIS_PROFILE") == "long" else 300

json_values = jsongen.json_values(text=20, keys=8, leaves=15)


def outcome(read: Any, body: bytes) -> tuple[Any, ...]:
    """What a reading of the body gives: the review and the decision for its pod, or the
    error's status, message and uid."""
    try:
        request: ReviewRequest = read(body)
    except RequestError as error:
        return ("error", error.status, str(error), error.uid)
    decision = mutate(request.pod, context=request.context(), rewrites=rewrite_script)
    # The pod is compared through what admission makes of it: a number past 64 bits where a
    # string belongs is a big int to one reader and a float to the other, and no string to both.
    request.pod = None  # type: ignore[assignment]
    return ("review", request, decision)


def assert_same(body: bytes) -> None:
    # The typed decoder's nesting bound is the interpreter's recursion limit: 1000 in the
    # server, under the 1024 of the full parse, so a body deeper than it is parsed whole.
    # Hypothesis raises the limit while it runs a test; the server's is restored here.
    raised = sys.getrecursionlimit()
    sys.setrecursionlimit(SERVER_RECURSION_LIMIT)
    try:
        typed = outcome(decode_review, body)
    finally:
        sys.setrecursionlimit(raised)
    assert typed == outcome(parse_body, body)


# Stands in the document for a nesting written into its JSON text: a value that deep would
# overflow Python's own recursion building, printing or comparing it.
DEEP = "\x00deep\x00"


def _body(document: Any, depth: int) -> bytes:
    text = json.dumps(document)
    return text.replace(json.dumps(DEEP), "[" * depth + "1" + "]" * depth).encode()


BASE = review(data_pod("llm-eval-leader"))
HEAD = review()


@settings(max_examples=EXAMPLES, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    base=st.sampled_from([HEAD, BASE]),
    version=st.sampled_from(API_VERSIONS),
    path=st.sampled_from(jsongen.REVIEW_PATHS),
    value=json_values | st.just(DEEP) | st.integers(10_000, 300_000).map(lambda n: "x" * n),
    depth=st.integers(1, 100) | st.integers(1_100, 5_000),
    remove=st.booleans(),
)
def test_the_typed_decode_answers_as_the_full_parse(
    *,
    base: dict[str, Any],
    version: str,
    path: tuple[str | int, ...],
    value: Any,
    depth: int,
    remove: bool,
) -> None:
    document = jsongen.with_field({**base, "apiVersion": version}, path, value, remove=remove)
    assert_same(_body(document, depth))


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_bytes_that_are_not_a_review_get_the_same_answer(body: bytes) -> None:
    assert_same(body)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"{",
        b"[]",
        b'{"kind":"AdmissionReview"} trailing',
        b"\xef\xbb\xbf{}",
        json.dumps(HEAD).encode()[:-1],
        json.dumps(HEAD).replace('"uid": "', '"uid": "\\ud800').encode(),
        json.dumps({**HEAD, "extra": "\udcff"}, ensure_ascii=False).encode(
            "utf-8", "surrogateescape"
        ),
        json.dumps(HEAD).encode().replace(b'"managedFields"', b'"managedFields\xff"'),
    ],
    ids=[
        "empty",
        "open",
        "array",
        "trailing",
        "bom",
        "cut",
        "lone-surrogate",
        "bad-utf8",
        "bad-utf8-skipped",
    ],
)
def test_malformed_bodies_get_the_same_answer(body: bytes) -> None:
    assert_same(body)


def _golden_documents() -> Iterator[tuple[str, dict[str, Any]]]:
    for path in sorted((TESTDATA / "pods").glob("*.yaml")):
        if not path.name.endswith(".golden.yaml"):
            yield path.name, review(data_pod(path.name.removesuffix(".yaml")))


def _corpus_documents() -> Iterator[tuple[str, dict[str, Any]]]:
    """The pods KServe builds from the shared corpus (a skip naming it when it is missing)."""
    for path, role, pod in kserve.corpus_pods():
        yield f"{path.name}-{role}", review(pod)
    for preset in llmisvc.preset_files():
        config = llmisvc.load(preset)
        for role in llmisvc.roles(config):
            pod = llmisvc.build_pod(config, role=role, user_args=["a b", "'x'"])
            yield f"{preset.name}-{role}", review(pod)


def _same_answers(documents: Iterator[tuple[str, dict[str, Any]]]) -> int:
    seen = 0
    for name, document in documents:
        body = json.dumps(document).encode()
        typed = outcome(decode_review, body)
        assert typed[0] == "review", (name, typed)
        assert typed == outcome(parse_body, body), name
        seen += 1
    return seen


def test_every_golden_pod_gets_the_same_answer() -> None:
    goldens = [p for p in (TESTDATA / "pods").glob("*.yaml") if ".golden." not in p.name]
    assert _same_answers(_golden_documents()) == len(goldens) > 10


def test_every_corpus_pod_gets_the_same_answer() -> None:
    assert _same_answers(_corpus_documents()) >= 30


def test_the_typed_view_holds_only_what_admission_reads() -> None:
    document = copy.deepcopy(HEAD)
    document["request"]["object"]["metadata"]["managedFields"] = [{"manager": "kserve"}]
    view = msgspec.json.decode(json.dumps(document).encode(), type=ReviewView)
    kept = json.dumps(msgspec.to_builtins(view))
    for skipped in ("managedFields", "volumeMounts", "resources", "env"):
        assert skipped not in kept
    assert "kserve-container" in kept
