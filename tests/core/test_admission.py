"""The AdmissionReview envelope: every malformed body named precisely, responses shaped right."""

from __future__ import annotations

import base64
import json

import jsonpatch
import pytest

from tests.support.builders import golden, review
from webhook.core.admission import ReviewError, allow, failed, parse_review
from webhook.core.mutate import mutate
from webhook.core.names import Action, Reason
from webhook.core.patch import to_json
from webhook.core.script import rewrite_script


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([], "body is not a JSON object"),
        ({"kind": "Pod"}, 'kind must be "AdmissionReview"'),
        ({**review(), "apiVersion": "v2"}, "apiVersion must be one of"),
        ({**review(), "request": None}, "request is missing or not an object"),
        (review(uid=None), "request.uid is missing"),
        (review(uid=""), "request.uid is empty"),
        (review(uid=7), "request.uid must be a string"),
        (review(object=None), "request.object is missing"),
        (review(object=[1]), "request.object must be a object"),
        (review(kind="Pod"), "request.kind must be a object"),
        (review(dryRun="yes"), "request.dryRun must be a boolean"),
        (review(namespace=3), "request.namespace must be a string"),
    ],
)
def test_malformed_reviews_are_named(body: object, message: str) -> None:
    with pytest.raises(ReviewError, match=message.replace("(", r"\(")):
        parse_review(body)


@pytest.mark.parametrize("api_version", ["admission.k8s.io/v1", "admission.k8s.io/v1beta1"])
def test_patched_response_echoes_uid_and_version(api_version: str) -> None:
    body = review(api_version=api_version)
    request = parse_review(body)
    decision = mutate(request.pod, context=request.context(), rewrites=rewrite_script)
    response = allow(request, decision)
    assert response["apiVersion"] == api_version
    assert response["kind"] == "AdmissionReview"
    inner = response["response"]
    assert inner["uid"] == request.uid
    assert inner["allowed"] is True
    assert inner["patchType"] == "JSONPatch"
    ops = json.loads(base64.b64decode(inner["patch"]))
    assert ops == to_json(decision.patch)
    assert (
        jsonpatch.apply_patch(body["request"]["object"], ops) == golden("legacy-head-pod")["object"]
    )
    assert inner["auditAnnotations"]["decision"] == Action.PATCHED
    assert inner["auditAnnotations"]["rules"].startswith("kserve-container=script-to-command+")


def test_pods_of_one_runtime_get_the_same_patch_under_their_own_uid() -> None:
    first = parse_review(review(uid="a"))
    second = parse_review(review(uid="b", name="llama-head-b"))
    answers = [
        allow(request, mutate(request.pod, context=request.context(), rewrites=rewrite_script))[
            "response"
        ]
        for request in (first, second)
    ]
    assert [answer["uid"] for answer in answers] == ["a", "b"]
    assert answers[0]["patch"] == answers[1]["patch"]


def test_no_patch_type_without_a_patch() -> None:
    request = parse_review(review(namespace="kube-system"))
    inner = allow(request, mutate(request.pod, context=request.context(), rewrites=rewrite_script))[
        "response"
    ]
    assert "patchType" not in inner
    assert "patch" not in inner
    assert inner["auditAnnotations"] == {
        "decision": Action.SKIPPED,
        "reason": Reason.SYSTEM_NAMESPACE,
    }


def test_shadow_context_gives_no_patch() -> None:
    request = parse_review(review())
    inner = allow(
        request, mutate(request.pod, context=request.context(shadow=True), rewrites=rewrite_script)
    )["response"]
    assert "patch" not in inner
    assert inner["warnings"]


@pytest.mark.parametrize(("deny", "allowed"), [(False, True), (True, False)])
def test_failure_policy(deny: bool, allowed: bool) -> None:
    inner = failed(parse_review(review()), message="boom", deny=deny)["response"]
    assert inner["allowed"] is allowed
    assert ("status" in inner) is deny
    assert "patch" not in inner
