"""The AdmissionReview envelope: validate a request body, build the response (DESIGN §5).

`admission.k8s.io/v1` and `v1beta1` are both read, and the response speaks the request's
version and echoes its `uid`. A body arrives as its typed view (`read_review`, what the server
decodes) or as parsed JSON (`parse_review`); both are checked by the same rules, and every way
they can be wrong raises `ReviewError` with a message that names the field, for an HTTP 400.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final, NamedTuple, TypedDict

from webhook.core.memo import Memo
from webhook.core.model import Context, Decision, Kind
from webhook.core.names import PREFIX
from webhook.core.patch import to_json
from webhook.core.view import PodView, RequestView, ReviewView, pod_view

API_VERSIONS: Final = ("admission.k8s.io/v1", "admission.k8s.io/v1beta1")


class ReviewError(ValueError):
    """The body is not an AdmissionReview we can answer."""


class Status(TypedDict):
    code: int
    message: str


class ResponseFields(TypedDict, total=False):
    """What a response says besides its uid and verdict."""

    patchType: str
    patch: str
    warnings: list[str]
    auditAnnotations: dict[str, str]
    status: Status


Answers = Memo[Decision, ResponseFields]
"""The response fields of the decisions a server has answered."""


class AdmissionResponse(ResponseFields):
    uid: str
    allowed: bool


class AdmissionReviewResponse(TypedDict):
    apiVersion: str
    kind: str
    response: AdmissionResponse


@dataclass(slots=True)
class ReviewRequest:
    """The fields of `request` the webhook uses, checked for type: one per review, never
    shared."""

    api_version: str
    uid: str
    operation: str
    kind: Kind
    namespace: str
    name: str
    dry_run: bool
    pod: PodView

    def context(self, *, shadow: bool = False) -> Context:
        """The request around the pod; `shadow` for `/mutate/shadow`."""
        return Context(self.operation, self.kind, self.namespace, shadow=shadow)


def _field(value: Any, name: str, kind: type, *, required: bool) -> Any:
    if value is None:
        if required:
            raise ReviewError(f"request.{name} is missing")
        return kind()
    if not isinstance(value, kind):
        raise ReviewError(f"request.{name} must be a {_TYPE_NAMES[kind]}")
    return value


_TYPE_NAMES: Final = MappingProxyType({str: "string", dict: "object", bool: "boolean"})


def parse_review(body: object) -> ReviewRequest:
    """Check that `body`, parsed JSON, is an AdmissionReview with what we need, and pull those
    fields out."""
    if not isinstance(body, dict):
        raise ReviewError("body is not a JSON object")
    request = body.get("request")
    if not isinstance(request, dict):
        return _checked(body.get("kind"), body.get("apiVersion"), None)
    pod = request.get("object")
    return _checked(
        body.get("kind"),
        body.get("apiVersion"),
        _RequestFields(
            request.get("uid"),
            request.get("kind"),
            request.get("namespace"),
            request.get("name"),
            request.get("operation"),
            request.get("dryRun"),
            pod_view(pod) if isinstance(pod, dict) else pod,
        ),
    )


def read_review(review: ReviewView) -> ReviewRequest:
    """The same checks on the typed view the server decodes a body into."""
    return _checked(review.kind, review.apiVersion, review.request)


class _RequestFields(NamedTuple):
    """`request` of a parsed body, read as the typed view reads it; `object` a view when it is
    an object, else as sent."""

    uid: Any
    kind: Any
    namespace: Any
    name: Any
    operation: Any
    dryRun: Any
    object: Any


def _checked(
    kind: object, api_version: object, request: RequestView | _RequestFields | None
) -> ReviewRequest:
    """The rules both readings share; `request` None: the body has no request object."""
    if kind != "AdmissionReview":
        raise ReviewError('kind must be "AdmissionReview"')
    if api_version not in API_VERSIONS:
        raise ReviewError(f"apiVersion must be one of {', '.join(API_VERSIONS)}")
    if request is None:
        raise ReviewError("request is missing or not an object")
    uid = _field(request.uid, "uid", str, required=True)
    if not uid:
        raise ReviewError("request.uid is empty")
    pod = request.object
    if pod is None:
        raise ReviewError("request.object is missing")
    if not isinstance(pod, PodView):
        raise ReviewError("request.object must be a object")
    gvk = _field(request.kind, "kind", dict, required=False)
    return ReviewRequest(
        api_version=str(api_version),
        uid=uid,
        operation=_field(request.operation, "operation", str, required=False),
        kind=Kind.of(gvk),
        namespace=_field(request.namespace, "namespace", str, required=False),
        name=_field(request.name, "name", str, required=False),
        dry_run=_field(request.dryRun, "dryRun", bool, required=False),
        pod=pod,
    )


def audit_annotations(decision: Decision) -> dict[str, str]:
    """Short keys: the API server prefixes each with the webhook's name."""
    audit = {"decision": str(decision.action), "reason": str(decision.reason)}
    if decision.rules:
        audit["rules"] = ";".join(f"{name}={'+'.join(r)}" for name, r in decision.rules.items())
    return audit


def allow(
    review: ReviewRequest, decision: Decision, *, answers: Answers | None = None
) -> AdmissionReviewResponse:
    """The response for a decision: a patch only when there is one. The fields of a cacheable
    decision are kept in `answers`, when given."""
    if answers is None or not decision.cacheable:
        fields = _fields(decision)
    else:
        fields = answers.get(decision) or answers.put(decision, _fields(decision))
    response: AdmissionResponse = {"uid": review.uid, "allowed": True, **fields}
    return _envelope(review, response)


def _fields(decision: Decision) -> ResponseFields:
    """What a response says for a decision, whatever the request.

    The server keeps them (`Answers`), since the pods of one runtime share their decision;
    kept fields are shared, so only ever read. Measured with `bench/wrk.py` (10 KB patched
    review, 16 connections, server pinned to one core): 10,800 reviews/s with this cache
    against 9,300 without, +17%.
    """
    fields: ResponseFields = {}
    if decision.patch:
        wire = json.dumps(to_json(decision.patch), separators=(",", ":"), ensure_ascii=False)
        fields["patchType"] = "JSONPatch"
        fields["patch"] = base64.b64encode(wire.encode()).decode()
    if decision.warnings:
        fields["warnings"] = list(decision.warnings)
    fields["auditAnnotations"] = audit_annotations(decision)
    return fields


def failed(review: ReviewRequest, *, message: str, deny: bool) -> AdmissionReviewResponse:
    """The response when our own code failed: fail open by default, or deny with a 500."""
    response: AdmissionResponse = {"uid": review.uid, "allowed": not deny}
    if deny:
        response["status"] = {"code": 500, "message": message}
    else:
        response["warnings"] = [f"{PREFIX}: internal error, pod admitted unchanged"]
    response["auditAnnotations"] = {"decision": "error", "reason": message[:200]}
    return _envelope(review, response)


def _envelope(review: ReviewRequest, response: AdmissionResponse) -> AdmissionReviewResponse:
    return {"apiVersion": review.api_version, "kind": "AdmissionReview", "response": response}
