"""The running server over real TLS: admission, error policy, preview, shadow, metrics."""

from __future__ import annotations

import base64
import copy
import json
import logging
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonpatch
import pytest
import yaml

from tests.support import llmisvc
from tests.support.builders import EXAMPLES, data_pod, example, golden, review
from tests.support.cli import cli
from tests.support.crash import crashing_script, rewrite_or_crash
from tests.support.poll import wait
from tests.support.servers import Running, running
from webhook.core import names
from webhook.core.model import Decision
from webhook.core.mutate import decide
from webhook.core.names import Action, Reason
from webhook.core.read import PodFacts

HEAD = example("legacy-head-pod.yaml")
WORKER = example("legacy-worker-pod.yaml")
MIGRATED = data_pod("exact-in-command")
NOT_KSERVE = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "web"},
    "spec": {"containers": [{"name": "web", "image": "nginx"}]},
}
# The InferenceService names that make `failing_decide` fail.
FAIL_PREFIX = "fail-"


def failing_decide(facts: PodFacts, **kwargs: Any) -> Decision:
    """The core's `decide`, except for pods of an InferenceService named to make it raise or
    overrun its deadline."""
    if facts.isvc == f"{FAIL_PREFIX}raise":
        raise RuntimeError("injected failure")
    if facts.isvc == f"{FAIL_PREFIX}slow":
        time.sleep(DEADLINE + 0.2)  # past the deadline, whatever the machine's speed
    return decide(facts, **kwargs)


# The default budget: an ordinary review is nowhere near it, even on a loaded machine.
DEADLINE = 1.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    with running(
        tmp_path_factory.mktemp("server"),
        decide=failing_decide,
        body_limit=256 * 1024,
        deadline_seconds=DEADLINE,
    ) as live:
        yield live


def post_review(live: Running, body: Any, path: str = "/mutate") -> dict[str, Any]:
    with live.client() as client:
        reply = client.post(path, json=body)
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"] == "application/json"
    data: dict[str, Any] = reply.json()
    return data


@pytest.mark.parametrize("api_version", ["admission.k8s.io/v1", "admission.k8s.io/v1beta1"])
@pytest.mark.parametrize(
    ("pod", "decision", "recorded"),
    [
        # `recorded`: the golden of a patched pod, what admission must make of it.
        (HEAD, Action.PATCHED, "legacy-head-pod"),
        (WORKER, Action.PATCHED, "legacy-worker-pod"),
        (MIGRATED, Action.UNCHANGED, None),
        (NOT_KSERVE, Action.SKIPPED, None),
    ],
    ids=["head", "worker", "already-migrated", "not-kserve"],
)
def test_review(
    server: Running, api_version: str, pod: dict[str, Any], decision: str, recorded: str | None
) -> None:
    body = review(pod, api_version=api_version, uid=f"uid-{decision}")
    reply = post_review(server, body)
    assert reply["apiVersion"] == api_version
    assert reply["kind"] == "AdmissionReview"
    response = reply["response"]
    assert response["uid"] == f"uid-{decision}"
    assert response["allowed"] is True
    assert response["auditAnnotations"]["decision"] == decision
    if decision != Action.PATCHED:
        assert "patchType" not in response
        assert "patch" not in response
        return
    assert response["patchType"] == "JSONPatch"
    patch = json.loads(base64.b64decode(response["patch"]))
    assert recorded is not None
    expected = golden(recorded)
    assert jsonpatch.apply_patch(pod, patch) == expected["object"]
    assert response["warnings"] == expected["warnings"]
    assert len(response["warnings"][0]) <= 120


def test_dry_run_is_answered_the_same(server: Running) -> None:
    body = review(HEAD)
    dry = copy.deepcopy(body)
    dry["request"]["dryRun"] = True
    assert post_review(server, dry)["response"] == post_review(server, body)["response"]


def _raw(
    live: Running, path: str, content: bytes, content_type: str | None = "application/json"
) -> Any:
    headers = {"content-type": content_type} if content_type else {}
    with live.client() as client:
        return client.post(path, content=content, headers=headers)


def _labelled(value: str) -> dict[str, Any]:
    pod = copy.deepcopy(HEAD)
    pod["metadata"]["labels"][names.ISVC_LABEL] = f"{FAIL_PREFIX}{value}"
    return pod


ERRORS = [
    ("empty body", b"", "application/json", 400, "body is empty"),
    ("invalid JSON", b"{nope", "application/json", 400, "body is not valid JSON"),
    ("not a review", b'{"kind": "Pod"}', "application/json", 400, 'kind must be "AdmissionReview"'),
    (
        "missing uid",
        json.dumps({**review(), "request": {**review()["request"], "uid": None}}).encode(),
        "application/json",
        400,
        "request.uid is missing",
    ),
    (
        "missing object",
        json.dumps({**review(), "request": {"uid": "u"}}).encode(),
        "application/json",
        400,
        "request.object is missing",
    ),
    (
        "wrong content type",
        json.dumps(review()).encode(),
        "text/plain",
        415,
        "content type must be",
    ),
    ("no content type", json.dumps(review()).encode(), None, 415, "got none"),
    (
        "oversized",
        b"{" + b" " * (300 * 1024) + b"}",
        "application/json",
        413,
        "over the 262144-byte limit",
    ),
]


@pytest.mark.parametrize(
    ("body", "content_type", "status", "message"),
    [e[1:] for e in ERRORS],
    ids=[e[0] for e in ERRORS],
)
def test_error_matrix(
    server: Running, body: bytes, content_type: str | None, status: int, message: str
) -> None:
    reply = _raw(server, "/mutate", body, content_type)
    assert reply.status_code == status
    assert message in reply.json()["error"]
    assert post_review(server, review())["response"]["allowed"] is True  # still serving


@pytest.mark.parametrize("fault", ["raise", "slow"])
def test_internal_error_fails_open(server: Running, fault: str) -> None:
    response = post_review(server, review(_labelled(fault)))["response"]
    assert response["allowed"] is True
    assert "patch" not in response
    assert response["auditAnnotations"]["decision"] == "error"
    assert "internal error" in response["warnings"][0]


def test_internal_error_denies_when_configured(tmp_path: Path) -> None:
    with running(tmp_path, decide=failing_decide, on_error="deny") as live:
        response = post_review(live, review(_labelled("raise")))["response"]
        assert response["allowed"] is False
        assert response["status"]["code"] == 500
        assert post_review(live, review())["response"]["allowed"] is True


def test_shadow_reports_and_never_patches(server: Running) -> None:
    response = post_review(server, review(HEAD), path="/mutate/shadow")["response"]
    assert response["allowed"] is True
    assert "patch" not in response
    assert "patchType" not in response
    assert "would rewrite kserve-container" in response["warnings"][0]
    assert response["auditAnnotations"]["decision"] == Action.SHADOW
    with server.ops() as ops:
        assert (
            'multinode_webhook_reviews_total{decision="shadow",endpoint="/mutate/shadow"}'
            in ops.get("/metrics").text
        )


@pytest.mark.parametrize(
    ("name", "content_type"),
    [("legacy-head-pod.yaml", "application/yaml"), ("legacy-worker-pod.yaml", "application/json")],
)
def test_preview_matches_the_cli(server: Running, name: str, content_type: str) -> None:
    text = (EXAMPLES / name).read_text()
    body = text if content_type == "application/yaml" else json.dumps(yaml.safe_load(text))
    params = {"namespace": "team-a", "namespaceLabel": f"{names.INJECT_LABEL}=enabled"}
    with server.previews() as client:
        reply = client.post(
            "/preview", content=body, params=params, headers={"content-type": content_type}
        )
    assert reply.status_code == 200, reply.text
    cli = subprocess.run(
        [
            sys.executable,
            "-m",
            "webhook",
            "preview",
            "-",
            "--namespace",
            "team-a",
            "--namespace-label",
            f"{names.INJECT_LABEL}=enabled",
        ],
        input=body,
        capture_output=True,
        text=True,
        check=True,
    )
    assert reply.json() == json.loads(cli.stdout)
    assert reply.json()["results"][0]["decision"] == Action.PATCHED


def test_the_cli_and_the_server_decide_alike_on_a_script_over_the_default_limit(
    server: Running,
) -> None:
    """A 70 KB script, between the server's 64 KiB limit and the 128 KiB the command line once
    had: `preview`, `/preview` and `/mutate` all leave it unchanged, as too large."""
    pod = copy.deepcopy(HEAD)
    container = pod["spec"]["containers"][0]
    container["args"][0] = "# " + "x" * 70_000 + "\n" + container["args"][0]
    assert 64 * 1024 < len(container["args"][0]) < 128 * 1024
    response = post_review(server, review(pod))["response"]
    assert "patch" not in response
    with server.previews() as client:
        served = client.post("/preview", json=pod).json()["results"][0]
    [offline] = json.loads(cli("preview", "-", "-o", "json", stdin=json.dumps(pod)).stdout)[
        "results"
    ]
    assert response["auditAnnotations"]["reason"] == Reason.SCRIPT_TOO_LARGE
    assert (
        (served["decision"], served["reason"])
        == (offline["decision"], offline["reason"])
        == (Action.UNCHANGED, Reason.SCRIPT_TOO_LARGE)
    )


def test_preview_renders_an_llm_inference_service_as_the_cli_does(server: Running) -> None:
    stream = yaml.safe_dump(llmisvc.small_service(["--served-model-name=my model"]))
    stream += "---\n" + yaml.safe_dump(llmisvc.EVAL_PRESET)
    with server.previews() as client:
        reply = client.post(
            "/preview", content=stream, headers={"content-type": "application/yaml"}
        )
    assert reply.status_code == 200, reply.text
    assert reply.json() == json.loads(cli("preview", "-", "-o", "json", stdin=stream).stdout)
    [result] = reply.json()["results"]
    assert result["rendered_from"] == "LLMInferenceService/granite (single)"
    assert result["launch"][0]["args"][0]["before"] == "split into 2 words"


def test_preview_renders_an_inference_service_as_the_cli_does(server: Running) -> None:
    stream = (EXAMPLES / "inferenceservice.yaml").read_text() + "---\n"
    stream += (EXAMPLES / "legacy-servingruntime.yaml").read_text()
    with server.previews() as client:
        reply = client.post(
            "/preview",
            content=stream,
            params={"kserveVersion": "0.15.2"},
            headers={"content-type": "application/yaml"},
        )
        wrong = client.post(
            "/preview",
            content=stream,
            params={"kserveVersion": "0.9"},
            headers={"content-type": "application/yaml"},
        )
    assert reply.status_code == 200, reply.text
    cli = subprocess.run(
        [sys.executable, "-m", "webhook", "preview", "-", "--kserve-version", "0.15.2"],
        input=stream,
        capture_output=True,
        text=True,
        check=True,
    )
    assert reply.json() == json.loads(cli.stdout)
    head, worker = reply.json()["results"]
    assert head["rendered_from"] == "InferenceService/llama (head)"
    assert head["launch"][0]["args"][0] == {
        "arg": "--max-model-len=4096",
        "before": "dropped: bash took it as $0",
        "after": "exact",
    }
    assert worker["launch"][0]["container"] == names.WORKER_CONTAINER
    assert wrong.status_code == 400
    assert "KServe 0.9 has no multi-node predictor rules" in wrong.json()["error"]


@pytest.mark.parametrize(
    ("params", "content_type", "body", "status"),
    [
        ({"format": "xml"}, "application/json", "{}", 400),
        ({"namespaceLabel": "novalue"}, "application/json", json.dumps(HEAD), 400),
        ({}, "application/json", "{not json", 400),
        ({}, "application/yaml", "a: &x [1]\nb: *x\n", 400),
        ({}, "text/plain", json.dumps(HEAD), 415),
        ({"format": "diff"}, "application/json", json.dumps(HEAD), 200),
        ({"format": "patch"}, "application/json", json.dumps(HEAD), 200),
        ({"format": "yaml"}, "application/json", json.dumps(HEAD), 200),
    ],
)
def test_preview_parameters(
    server: Running, params: dict[str, str], content_type: str, body: str, status: int
) -> None:
    with server.previews() as client:
        reply = client.post(
            "/preview", content=body, params=params, headers={"content-type": content_type}
        )
    assert reply.status_code == status, reply.text
    if status != 200:
        assert reply.json()["error"]


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ("kind: Pod\nmetadata: {name: a}\nkind: Pod\n", "body:3:1: duplicate key 'kind'"),
        ("a: [b\n", "body:2:1: invalid YAML"),
        ("", "body: the input holds no Kubernetes object"),
    ],
    ids=["duplicate-key", "unclosed", "empty"],
)
def test_preview_errors_name_the_line(server: Running, body: str, error: str) -> None:
    with server.previews() as client:
        reply = client.post("/preview", content=body, headers={"content-type": "application/yaml"})
    assert reply.status_code == 400
    assert reply.json()["error"].startswith(error), reply.json()


def _metric(text: str, name: str) -> float:
    values = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name)]
    return sum(values)


def test_metrics_move_after_requests(server: Running) -> None:
    with server.ops() as ops:
        before = ops.get("/metrics").text
        post_review(server, review(HEAD))
        _raw(server, "/mutate", b"", "application/json")
        after = ops.get("/metrics").text
    for family in (
        "multinode_webhook_reviews_total",
        "multinode_webhook_review_duration_seconds_count",
        "multinode_webhook_request_body_bytes_count",
        "multinode_webhook_rejected_requests_total",
    ):
        assert _metric(after, family) > _metric(before, family), family
    assert 'multinode_webhook_build_info{version="' in after
    assert 3.0e7 < _metric(after, "multinode_webhook_certificate_expiry_seconds") < 3.2e7
    assert 'le="0.00025"' in after
    assert 'le="1.0"' in after


def test_a_preview_request_is_counted_once(server: Running) -> None:
    sample = 'multinode_webhook_reviews_total{decision="preview",endpoint="/preview"}'
    stream = "---\n".join(yaml.safe_dump(pod) for pod in (HEAD, WORKER, HEAD))
    with server.ops() as ops, server.previews() as client:
        before = _metric(ops.get("/metrics").text, sample)
        reply = client.post(
            "/preview", content=stream, headers={"content-type": "application/yaml"}
        )
        assert len(reply.json()["results"]) == 3
        after = _metric(ops.get("/metrics").text, sample)
    assert after == before + 1


def test_health_and_readiness(server: Running) -> None:
    with server.ops() as ops:
        assert ops.get("/healthz").status_code == 200
        assert ops.get("/readyz").json() == {"status": "ready"}


def test_wrong_method_and_unknown_path(server: Running) -> None:
    sample = 'multinode_webhook_rejected_requests_total{code="404",endpoint="other"}'
    with server.client() as client, server.previews() as previews, server.ops() as ops:
        before = _metric(ops.get("/metrics").text, sample)
        replies = {
            405: [client.get("/mutate"), previews.get("/preview"), ops.post("/metrics")],
            404: [
                client.post("/nowhere", json={}),
                client.post("/preview", json={}),
                client.get("/openapi.json"),
                client.get("/docs"),
                previews.get("/openapi.json"),
                previews.get("/docs"),
                previews.post("/mutate", json={}),
                ops.get("/nowhere"),
            ],
        }
        # Each 404 is a refusal, counted as docs/reference.md says: the six on paths that are not
        # ours as "other" (/preview and /mutate on the wrong port count under their names).
        assert _metric(ops.get("/metrics").text, sample) - before == 6
    for status, answers in replies.items():
        for reply in answers:
            assert reply.status_code == status, reply.request.url
            assert set(reply.json()) == {"error"}, reply.text


def test_a_readable_uid_is_echoed_on_a_400(server: Running) -> None:
    body = review()
    del body["request"]["object"]
    with server.client() as client:
        reply = client.post("/mutate", json=body)
    assert reply.status_code == 400
    assert reply.json() == {
        "error": "not an AdmissionReview we can answer: request.object is missing",
        "uid": body["request"]["uid"],
    }


def test_ip_address_san_verifies(server: Running) -> None:
    with server.client(host="127.0.0.1") as client:
        assert client.post("/mutate", json=review()).status_code == 200


def _crashing_head(serial: int) -> dict[str, Any]:
    pod = copy.deepcopy(HEAD)
    pod["spec"]["containers"][0]["args"][0] = crashing_script(serial)
    return pod


def test_a_script_that_crashes_the_parser_is_admitted_unchanged(tmp_path: Path) -> None:
    with running(tmp_path, rewrite=rewrite_or_crash) as live, live.ops() as ops:
        for _ in range(3):  # the same pod again, as its controller retries it
            response = post_review(live, review(_crashing_head(7)))["response"]
            assert response["allowed"] is True
            assert "patch" not in response
            assert response["auditAnnotations"]["reason"] == Reason.PARSER_FAILED
            assert response["warnings"] == [
                "multinode-webhook left kserve-container unchanged: "
                "the bash parser crashed on the script"
            ]
        # One crash: the pod's script was never handed to a worker again.
        assert _metric(ops.get("/metrics").text, "multinode_webhook_parser_crashes_total") == 1
        assert post_review(live, review(HEAD))["response"]["patchType"] == "JSONPatch"
        assert ops.get("/readyz").status_code == 200


def test_a_parser_crash_denies_when_configured(tmp_path: Path) -> None:
    with running(tmp_path, rewrite=rewrite_or_crash, on_error="deny") as live:
        response = post_review(live, review(_crashing_head(8)))["response"]
        assert response["allowed"] is False
        assert response["status"]["code"] == 500
        assert response["auditAnnotations"]["decision"] == "error"
        assert post_review(live, review(HEAD))["response"]["allowed"] is True


def test_without_cluster_credentials_a_replica_starts_cold_tells_no_owner_and_says_so_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with (
        caplog.at_level(logging.INFO, logger="multinode_webhook"),
        running(tmp_path) as live,
        live.ops() as ops,
    ):
        wait(lambda: ops.get("/readyz").status_code == 200, "the replica to be ready")
        wait(lambda: not live.state.events.on, "Events to be turned off")
        assert post_review(live, review(HEAD))["response"]["patchType"] == "JSONPatch"
    said = {
        logger: [r.getMessage() for r in caplog.records if r.name == f"multinode_webhook.{logger}"]
        for logger in ("listeners", "warmup", "events")
    }
    assert said == {
        "listeners": [
            "no cluster credentials: warm start and Events off; first-seen scripts are parsed "
            "on first use"
        ],
        "warmup": [],
        "events": [],
    }
