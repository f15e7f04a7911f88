"""AdmissionReview bodies as kube-apiserver sends them, captured from the envtest API server.

  KUBEBUILDER_ASSETS=DIR python bench/reviews.py OUT_DIR   # writes one JSON body per shape

A webhook with no object selector, on namespace `bench` only, answers every pod CREATE with
`allowed` and keeps the body it was sent. Four pods are created through it: a legacy head pod
(its managedFields the API server's own), a Ray worker pod, the leader of an
LLMInferenceService rendered from KServe master's data-parallel preset (the shared corpus),
and a pod that is not KServe's. `bench/versus_go.py` captures them the same way on each run;
nothing captured is kept in the repository.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import ssl
import sys
import tempfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Final

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_mutate import realistic_head_pod
from tests.support import envtest, kserve, llmisvc
from tests.support.builders import EXAMPLES
from tests.support.poll import wait
from webhook.adapters import certs
from webhook.offline import llmrender

NAMESPACE: Final = "bench"
SHAPES: Final = ("head pod", "Ray worker", "LLM leader", "not ours")
_CONFIGURATIONS: Final = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations"


def _pods() -> dict[str, dict[str, Any]]:
    """The pod of each shape, as its controller would create it."""
    runtime = yaml.safe_load((EXAMPLES / "legacy-servingruntime.yaml").read_text())
    preset = llmisvc.load(
        llmisvc.CORPUS / "kserve-master-aaac4e294-config-llm-worker-data-parallel.yaml"
    )
    service = llmisvc.service(
        preset, args={"leader": ["--served-model-name=my model"], "worker": []}
    )
    [leader] = [p.pod for p in llmrender.render(service, [preset]) if p.role == "leader"]
    plain = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "plain", "labels": {"app": "plain"}},
        "spec": {"containers": [{"name": "app", "image": "busybox", "args": ["sleep", "1"]}]},
    }
    return {
        "head pod": realistic_head_pod(),
        "Ray worker": kserve.build_pod(runtime, role="worker", user_args=["--num-gpus=1"]),
        "LLM leader": leader,
        "not ours": plain,
    }


@contextlib.contextmanager
def _capturing(bundle: certs.Bundle, work: Path) -> Iterator[tuple[int, list[bytes]]]:
    """An HTTPS webhook that allows every review and keeps each body: (its port, the bodies)."""
    bodies: list[bytes] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            bodies.append(body)
            uid = json.loads(body)["request"]["uid"]
            reply = json.dumps(
                {
                    "apiVersion": "admission.k8s.io/v1",
                    "kind": "AdmissionReview",
                    "response": {"uid": uid, "allowed": True},
                }
            ).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *_: object) -> None:
            pass

    certs.write(bundle, work)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(work / certs.CERT_FILE, work / certs.KEY_FILE)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], bodies
    finally:
        server.shutdown()


def capture(work: Path) -> dict[str, bytes]:
    """The body of each shape's review, as the envtest API server sent it."""
    if not envtest.AVAILABLE:
        raise SystemExit(f"capturing reviews: {envtest.MISSING}")
    if not llmisvc.CORPUS.is_dir():
        raise SystemExit(f"capturing reviews: the shared preset corpus is not at {llmisvc.CORPUS}")
    pods = _pods()
    bundle = certs.generate(sans=("127.0.0.1", "localhost"), days=1)
    (work / "envtest").mkdir()
    for cluster in envtest.started(work / "envtest"):
        with cluster.client() as client, _capturing(bundle, work / "certs") as (port, bodies):
            client.post(
                "/api/v1/namespaces",
                json={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
            )
            configuration = {
                "apiVersion": "admissionregistration.k8s.io/v1",
                "kind": "MutatingWebhookConfiguration",
                "metadata": {"name": "bench-capture"},
                "webhooks": [
                    {
                        "name": "capture.bench.local",
                        "admissionReviewVersions": ["v1"],
                        "sideEffects": "None",
                        "failurePolicy": "Fail",
                        "clientConfig": {
                            "url": f"https://127.0.0.1:{port}/capture",
                            "caBundle": bundle.ca_bundle(),
                        },
                        "namespaceSelector": {
                            "matchLabels": {"kubernetes.io/metadata.name": NAMESPACE}
                        },
                        "rules": [
                            {
                                "apiGroups": [""],
                                "apiVersions": ["v1"],
                                "operations": ["CREATE"],
                                "resources": ["pods"],
                            }
                        ],
                    }
                ],
            }
            assert client.post(_CONFIGURATIONS, json=configuration).status_code == 201
            for shape, pod in pods.items():
                body = {**pod, "metadata": {**pod["metadata"], "namespace": NAMESPACE}}
                body["metadata"].pop("generateName", None)
                body["metadata"]["name"] = name = shape.replace(" ", "-").lower()

                def sent(body: dict[str, Any] = body, name: str = name) -> bool:
                    # Dry runs until the new configuration reaches the API server's admission.
                    reply = client.post(
                        f"/api/v1/namespaces/{NAMESPACE}/pods", json=body, params={"dryRun": "All"}
                    )
                    assert reply.status_code == 201, reply.text
                    return any(json.loads(b)["request"]["name"] == name for b in bodies)

                wait(sent, f"the review of the {shape}")
                # Then the create itself, whose review is the one kept (not a dry run).
                reply = client.post(f"/api/v1/namespaces/{NAMESPACE}/pods", json=body)
                assert reply.status_code == 201, reply.text
            # The last review of each name: the real create's.
            found = {json.loads(b)["request"]["name"]: b for b in bodies}
            return {shape: found[shape.replace(" ", "-").lower()] for shape in SHAPES}
    raise SystemExit("capturing reviews: the API server did not start")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("out", type=Path, help="folder for the captured bodies")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        captured = capture(Path(scratch))
    args.out.mkdir(parents=True, exist_ok=True)
    for shape, body in captured.items():
        path = args.out / f"{shape.replace(' ', '-').lower()}.json"
        path.write_bytes(body)
        print(f"{path}: {len(body)} bytes")


if __name__ == "__main__":
    main()
