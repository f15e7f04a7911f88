"""Generated bodies against the running server: only 200, 400, 413 or 415, never a 500 or a
dropped connection, and a valid review is still answered right afterwards."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support import jsongen, servers
from tests.support.builders import review
from tests.support.servers import Running, client_context, running

EXAMPLES = 20_000 if os.environ.get("HYPOTHESIS_PROFILE") == "long" else 1_500
ALLOWED = {200, 400, 413, 415}
LIMIT = 64 * 1024

json_values = jsongen.json_values(text=30, keys=10, leaves=20)


def _with(path: tuple[str | int, ...], value: Any) -> dict[str, Any]:
    body: dict[str, Any] = jsongen.with_field(review(), path, value)
    return body


bodies = st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.tuples(st.sampled_from(jsongen.REVIEW_PATHS), json_values).map(
        lambda t: json.dumps(_with(*t)).encode()
    ),
    st.integers(1, 400).map(lambda n: json.dumps(review()).encode()[:-n]),
    st.integers(LIMIT - 200, LIMIT + 200).map(
        lambda n: json.dumps(_with(("request", "object", "metadata", "name"), "x" * n)).encode()
    ),
)
content_types = st.sampled_from(
    [
        "application/json",
        "application/json; charset=utf-8",
        "application/yaml",
        "text/plain",
        "",
        "application/x-www-form-urlencoded",
    ]
)
paths = st.sampled_from(["/mutate", "/mutate/shadow", "/preview"])


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    with running(
        tmp_path_factory.mktemp("fuzz"), body_limit=LIMIT, preview_body_limit=LIMIT
    ) as server:
        yield server


@pytest.fixture(scope="module")
def client(live: Running) -> Iterator[httpx.Client]:
    with live.client() as session:
        yield session


@pytest.fixture(scope="module")
def previews(live: Running) -> Iterator[httpx.Client]:
    with live.previews() as session:
        yield session


@settings(max_examples=EXAMPLES, suppress_health_check=list(HealthCheck), deadline=None)
@given(path=paths, body=bodies, content_type=content_types)
def test_generated_bodies_get_only_client_errors(
    client: httpx.Client, previews: httpx.Client, path: str, body: bytes, content_type: str
) -> None:
    headers = {"content-type": content_type} if content_type else {}
    reply = (previews if path == "/preview" else client).post(path, content=body, headers=headers)
    assert reply.status_code in ALLOWED, (reply.status_code, reply.text[:300])
    if reply.status_code != 200:
        assert reply.json()["error"]


def test_valid_review_after_the_fuzz(live: Running, client: httpx.Client) -> None:
    reply = client.post("/mutate", json=review(uid="after"))
    assert reply.status_code == 200
    assert reply.json()["response"]["uid"] == "after"
    assert reply.json()["response"]["patchType"] == "JSONPatch"


DEEP_FIELDS = [
    *jsongen.REVIEW_PATHS,
    ("request", "object", "metadata", "generateName"),
    ("request", "object", "metadata", "namespace"),
]


def _nested(depth: int) -> Any:
    value: Any = "x"
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


def test_deep_nesting_in_any_field_keeps_the_connection(tmp_path: Path) -> None:
    """600 levels in every field the server reads, one after another on one keep-alive
    connection: each is answered, and the same connection still serves a valid review. At
    the info level, so that every review's log line is written too."""
    deep = _nested(600)
    bodies = [_with(path, deep) for path in DEEP_FIELDS]
    container = review()["request"]["object"]["spec"]["containers"][0]
    for key in ("name", "command", "args"):
        body = review()
        body["request"]["object"]["spec"]["containers"][0] = {**container, key: deep}
        bodies.append(body)
    with running(tmp_path, log_level="info") as live:
        _exchange_all(live, bodies)


def _exchange_all(live: Running, bodies: list[dict[str, Any]]) -> None:
    raw = socket.create_connection(("127.0.0.1", live.https_port))
    with client_context(live.ca_pem).wrap_socket(raw, server_hostname="localhost") as tls:
        for body in bodies:
            servers.send_review(tls, json.dumps(body).encode())
            status, _ = servers.read_response(tls)
            assert status in ALLOWED, status
        servers.send_review(tls, json.dumps(review()).encode())
        status, answer = servers.read_response(tls)
        assert status == 200
        assert json.loads(answer)["response"]["allowed"] is True
