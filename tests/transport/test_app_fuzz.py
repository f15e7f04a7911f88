"""Generated bodies against the running server: only 200, 400, 413 or 415, never a 500 or a
dropped connection, and a valid review is still answered right afterwards."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.builders import review
from tests.support.servers import Running, running

EXAMPLES = 20_000 if os.environ.get("HYPOTHESIS_PROFILE") == "long" else 1_500
ALLOWED = {200, 400, 413, 415}
LIMIT = 64 * 1024

scalars = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)


def _with(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    body: dict[str, Any] = review()
    target = body
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return body


FIELDS = [
    ("apiVersion",),
    ("kind",),
    ("request",),
    ("request", "uid"),
    ("request", "kind"),
    ("request", "operation"),
    ("request", "namespace"),
    ("request", "object"),
    ("request", "dryRun"),
    ("request", "object", "metadata"),
    ("request", "object", "spec"),
    ("request", "object", "spec", "containers"),
]

bodies = st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.tuples(st.sampled_from(FIELDS), json_values).map(lambda t: json.dumps(_with(*t)).encode()),
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
    with running(tmp_path_factory.mktemp("fuzz"), body_limit=LIMIT) as server:
        yield server


@pytest.fixture(scope="module")
def client(live: Running) -> Iterator[httpx.Client]:
    with live.client() as session:
        yield session


@settings(max_examples=EXAMPLES, suppress_health_check=list(HealthCheck), deadline=None)
@given(path=paths, body=bodies, content_type=content_types)
def test_generated_bodies_get_only_client_errors(
    client: httpx.Client, path: str, body: bytes, content_type: str
) -> None:
    headers = {"content-type": content_type} if content_type else {}
    reply = client.post(path, content=body, headers=headers)
    assert reply.status_code in ALLOWED, (reply.status_code, reply.text[:300])
    if reply.status_code != 200:
        assert reply.json()["error"]


def test_valid_review_after_the_fuzz(live: Running, client: httpx.Client) -> None:
    reply = client.post("/mutate", json=review(uid="after"))
    assert reply.status_code == 200
    assert reply.json()["response"]["uid"] == "after"
    assert reply.json()["response"]["patchType"] == "JSONPatch"
