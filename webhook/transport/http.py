"""HTTP plumbing the listeners share: the endpoints, the body read under its checks (content
type, size), JSON answers and errors (`RequestError`, a 4xx or 503 as `{"error": ...}`), and
the AdmissionReview decoded from a body (DESIGN §5)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

import msgspec
import orjson
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Receive, Scope, Send

from webhook.core import admission
from webhook.core.view import ReviewView

MUTATE: Final = "/mutate"
MUTATE_SHADOW: Final = "/mutate/shadow"
PREVIEW: Final = "/preview"
ENDPOINTS: Final = (MUTATE, MUTATE_SHADOW, PREVIEW)
OTHER: Final = "other"
JSON_TYPES: Final = ("application/json",)
YAML_TYPES: Final = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")


class RequestError(Exception):
    """A request we refuse with a 4xx status and a JSON error."""

    def __init__(self, status: int, message: str, *, uid: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.uid = uid


def _media_type(headers: list[tuple[bytes, bytes]]) -> str:
    for name, value in headers:
        if name == b"content-type":
            return value.split(b";", 1)[0].strip().lower().decode("latin-1")
    return ""


def _content_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    for name, value in headers:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                raise RequestError(400, "Content-Length is not a number") from None
    return None


async def read_body(
    scope: Scope, receive: Receive, *, limit: int, accept: tuple[str, ...]
) -> bytes:
    """The whole request body, after the content type and size checks of DESIGN §5."""
    headers = scope["headers"]
    media = _media_type(headers)
    if media not in accept:
        raise RequestError(
            415, f"content type must be {' or '.join(accept)}, got {media or 'none'}"
        )
    declared = _content_length(headers)
    if declared is not None and declared > limit:
        raise RequestError(413, f"body of {declared} bytes is over the {limit}-byte limit")
    chunks: list[bytes] = []
    size = 0
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise RequestError(400, "client disconnected before sending the body")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise RequestError(413, f"body is over the {limit}-byte limit")
        chunks.append(chunk)
        more = message.get("more_body", False)
    return b"".join(chunks)


async def send_json(send: Send, status: int, body: bytes, *, close: bool = False) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def error_body(message: str, *, uid: str | None = None) -> bytes:
    return orjson.dumps({"error": message} if uid is None else {"error": message, "uid": uid})


# The fields admission reads, decoded straight from a body; every other field is skipped.
_DECODER: Final = msgspec.json.Decoder(ReviewView)
# What the typed decode rejects: a body that is not JSON, or whose fields of an object type hold
# something else, or nested past the decoder's depth. The full parse then says what is wrong.
_UNTYPED: Final = (msgspec.DecodeError, msgspec.ValidationError, RecursionError, UnicodeError)


def decode_review(body: bytes) -> admission.ReviewRequest:
    """The AdmissionReview in `body`, or a 400 naming what is wrong with it.

    Decoded straight into the typed view: `orjson.loads` built a dict for every field of the
    review, about 3 times the work. The typed decode skips the fields it does not read
    without checking their UTF-8, so the body is checked for it too; a body the typed decode
    rejects is parsed whole, and `parse_review` on that names the problem as it always has.
    One difference remains: a number past the range of a float, in a field admission does not
    read, is skipped here where the full parse refuses it. Nesting is bounded as before: the
    typed decoder stops at the interpreter's recursion limit (1000, under the full parse's
    1024), and a body it stops on is parsed whole.
    """
    try:
        view = _DECODER.decode(body)
        body.decode("utf-8")
    except _UNTYPED:
        return parse_body(body)
    try:
        return admission.read_review(view)
    except admission.ReviewError as error:
        uid = view.request.uid if view.request is not None else None
        raise _not_a_review(error, uid) from None


def parse_body(body: bytes) -> admission.ReviewRequest:
    """The review parsed whole: the path of a body the typed decode rejects."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise RequestError(400, f"body is not valid JSON: {error}") from None
    try:
        return admission.parse_review(document)
    except admission.ReviewError as error:
        request = document.get("request") if isinstance(document, dict) else None
        raise _not_a_review(
            error, request.get("uid") if isinstance(request, dict) else None
        ) from None


def _not_a_review(error: admission.ReviewError, uid: object) -> RequestError:
    """The 400 for a body that is not an AdmissionReview we can answer, echoing its uid when
    the body got far enough to hold one."""
    message = f"not an AdmissionReview we can answer: {error}"
    return RequestError(400, message, uid=uid if isinstance(uid, str) and uid else None)


def json_errors(app: FastAPI, *, refused: Callable[[str, RequestError], None]) -> None:
    """Every HTTP error of the framework's own (404, 405, ...) as `{"error": ...}`, counted
    and logged as a refusal (`refused`)."""

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> Response:
        refused(request.url.path, RequestError(error.status_code, str(error.detail)))
        return JSONResponse(
            {"error": str(error.detail)}, status_code=error.status_code, headers=error.headers
        )
