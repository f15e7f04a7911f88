"""A small fake of the Kubernetes API over real HTTP on 127.0.0.1, for the cluster commands.

It serves the few paths they use, keeps objects as raw JSON with resourceVersions, answers 404,
409 and 422 as the API server does, applies JSON patches, and records every request.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jsonpatch
import yaml

from tests.support.builders import REPO
from webhook.core import names
from webhook.core.names import Inject

_MUTATING = r"^/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/(?P<name>[^/]+)$"
_SERVING_RUNTIMES = (
    r"^/apis/serving.kserve.io/v1alpha1/namespaces/(?P<ns>[^/]+)/servingruntimes/(?P<name>[^/]+)$"
)
_ISVC = (
    r"^/apis/serving.kserve.io/v1beta1/namespaces/(?P<ns>[^/]+)/inferenceservices/(?P<name>[^/]+)$"
)
_LLMISVC = (
    r"^/apis/serving.kserve.io/v1alpha2/namespaces/(?P<ns>[^/]+)/llminferenceservices/"
    r"(?P<name>[^/]+)$"
)
ROUTES = [
    (re.compile(r"^/api/v1/namespaces$"), "namespaces"),
    (re.compile(r"^/api/v1/namespaces/(?P<ns>[^/]+)/pods(?:/(?P<name>[^/]+))?$"), "pods"),
    (re.compile(r"^/api/v1/namespaces/(?P<ns>[^/]+)/secrets(?:/(?P<name>[^/]+))?$"), "secrets"),
    (re.compile(r"^/api/v1/namespaces/(?P<ns>[^/]+)/events(?:/(?P<name>[^/]+))?$"), "events"),
    (re.compile(_MUTATING), "mutatingwebhookconfigurations"),
    (re.compile(_ISVC), "inferenceservices"),
    (re.compile(_LLMISVC), "llminferenceservices"),
    (re.compile(_SERVING_RUNTIMES), "servingruntimes"),
    (
        re.compile(r"^/apis/apps/v1/namespaces/(?P<ns>[^/]+)/deployments/(?P<name>[^/]+)$"),
        "deployments",
    ),
    (
        re.compile(r"^/apis/apps/v1/namespaces/(?P<ns>[^/]+)/replicasets/(?P<name>[^/]+)$"),
        "replicasets",
    ),
    (
        re.compile(r"^/apis/discovery.k8s.io/v1/namespaces/(?P<ns>[^/]+)/endpointslices$"),
        "endpointslices",
    ),
]


INSTALL_NAMESPACE = "multinode-webhook"
SERVICE = "multinode-webhook"


def opt_in_configuration() -> dict[str, Any]:
    """The opt-in overlay's MutatingWebhookConfiguration, as the cluster holds it before
    bootstrap: `enabled` namespaces are mutated, `shadow` ones shadowed."""
    base: dict[str, Any] = yaml.safe_load(
        (REPO / "deploy/base/mutatingwebhookconfiguration.yaml").read_text()
    )
    for index, entry in enumerate(base["webhooks"]):  # mutate, shadow; for each kind of pod
        inject = Inject.SHADOW if index % 2 else Inject.ENABLED
        entry["namespaceSelector"] = {"matchLabels": {names.INJECT_LABEL: inject}}
        # as kustomize fills it in from the overlay's namespace
        entry["clientConfig"]["service"]["namespace"] = INSTALL_NAMESPACE
    return base


def route(path: str) -> tuple[str, str, str | None] | None:
    """(resource, namespace, name) for a path the fake serves."""
    for pattern, resource in ROUTES:
        match = pattern.match(path)
        if match:
            groups = match.groupdict()
            return resource, groups.get("ns") or "", groups.get("name")
    return None


class FakeApi:
    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.requests: list[tuple[str, str]] = []
        self.version = 0
        self.lock = threading.Lock()
        # Cleared, every request waits until it is set again: an API server that hangs.
        self.gate = threading.Event()
        self.gate.set()

    def put(self, resource: str, obj: dict[str, Any]) -> None:
        self.version += 1
        obj.setdefault("metadata", {})["resourceVersion"] = str(self.version)
        self.objects[resource, obj["metadata"].get("namespace", ""), obj["metadata"]["name"]] = obj

    def get(self, resource: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self.objects.get((resource, namespace, name))

    def writes(self) -> list[tuple[str, str]]:
        return [r for r in self.requests if r[0] != "GET"]


def _resources(group_version: str, *kinds: tuple[str, str]) -> dict[str, Any]:
    verbs = ["create", "delete", "get", "list", "patch", "update"]
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": [
            {"name": plural, "singularName": kind.lower(), "namespaced": True, "kind": kind}
            | {"verbs": verbs}
            for plural, kind in kinds
        ],
    }


def _group(name: str, version: str) -> dict[str, Any]:
    both = {"groupVersion": f"{name}/{version}", "version": version}
    return {"name": name, "versions": [both], "preferredVersion": both}


# Discovery, for `kubectl apply`: the kinds the tests send it.
DISCOVERY: dict[str, dict[str, Any]] = {
    "/api": {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []},
    "/apis": {
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [_group("apps", "v1"), _group("serving.kserve.io", "v1alpha1")],
    },
    "/api/v1": _resources("v1", ("pods", "Pod"), ("secrets", "Secret")),
    "/apis/apps/v1": _resources("apps/v1", ("deployments", "Deployment")),
    "/apis/serving.kserve.io/v1alpha1": _resources(
        "serving.kserve.io/v1alpha1", ("servingruntimes", "ServingRuntime")
    ),
}


def _status(code: int, message: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "message": message,
        "code": code,
    }


class _Handler(BaseHTTPRequestHandler):
    disable_nagle_algorithm = True  # else every response waits ~40 ms for a delayed ACK
    api: FakeApi

    def log_message(self, *_: Any) -> None:
        pass

    def _send(self, code: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> Any:
        return json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)) or b"null")

    def _handle(self) -> None:
        path = self.path.split("?")[0]
        api = self.api
        api.gate.wait(30)
        with api.lock:
            api.requests.append((self.command, path))
            if self.command == "GET" and path in DISCOVERY:
                return self._send(200, DISCOVERY[path])
            found = route(path)
            if found is None:
                return self._send(404, _status(404, f"no route {path}"))
            resource, ns, name = found
            if resource == "namespaces":
                items = [o for (r, _, _), o in api.objects.items() if r == "namespaces"]
                return self._send(
                    200, {"kind": "NamespaceList", "apiVersion": "v1", "items": items}
                )
            if self.command == "GET" and name is None:
                items = [o for (r, n, _), o in api.objects.items() if (r, n) == (resource, ns)]
                return self._send(200, {"kind": "List", "apiVersion": "v1", "items": items})
            current = api.get(resource, ns, name) if name else None
            if self.command == "GET":
                if current is None:
                    return self._send(404, _status(404, f'{resource} "{name}" not found'))
                return self._send(200, current)
            if self.command == "DELETE":
                if current is None:
                    return self._send(404, _status(404, f'{resource} "{name}" not found'))
                del api.objects[(resource, ns, name or "")]
                return self._send(200, current)
            body = self._body()
            if self.command == "POST":
                name = body["metadata"]["name"]
                if api.get(resource, ns, name):
                    return self._send(409, _status(409, f'{resource} "{name}" already exists'))
                body["metadata"]["namespace"] = ns
                api.put(resource, body)
                return self._send(201, body)
            if current is None:
                return self._send(404, _status(404, f'{resource} "{name}" not found'))
            if self.command == "PUT":
                if (
                    body["metadata"].get("resourceVersion")
                    != current["metadata"]["resourceVersion"]
                ):
                    return self._send(409, _status(409, "the object has been modified"))
                api.put(resource, body)
                return self._send(200, body)
            if self.command == "PATCH":
                if self.headers.get("content-type") != "application/json-patch+json":
                    return self._send(415, _status(415, "only JSON patch here"))
                try:
                    patched = jsonpatch.apply_patch(current, body)
                except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as error:
                    return self._send(422, _status(422, str(error)))
                api.put(resource, patched)
                return self._send(200, patched)
            return self._send(405, _status(405, self.command))

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle


def write_kubeconfig(path: Path, port: int) -> Path:
    """A kubeconfig at `path` for an API server on 127.0.0.1:`port`, over plain HTTP."""
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "fake",
                "clusters": [{"name": "fake", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
                "users": [{"name": "fake", "user": {"token": "fake"}}],
                "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}],
            }
        )
    )
    return path


@contextlib.contextmanager
def serving(tmp_path: Path) -> Iterator[tuple[FakeApi, Path]]:
    """The fake API and a kubeconfig that points at it."""
    api = FakeApi()
    handler = type("Handler", (_Handler,), {"api": api})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", server.server_port)
    try:
        yield api, kubeconfig
    finally:
        server.shutdown()
        server.server_close()


def webhook_deployment(*extra_args: str) -> dict[str, Any]:
    """The install's own Deployment, with extra `serve` flags."""
    deployment: dict[str, Any] = yaml.safe_load((REPO / "deploy/base/deployment.yaml").read_text())
    deployment["metadata"]["namespace"] = INSTALL_NAMESPACE
    deployment["spec"]["template"]["spec"]["containers"][0]["args"] += list(extra_args)
    return deployment


def serving_install(api: FakeApi, *extra_args: str) -> None:
    """What a healthy install adds to the certificates: a ready Deployment (its `serve` given
    `extra_args`), a ready endpoint behind the Service, and the certificate Deployment ready."""
    deployment = webhook_deployment(*extra_args)
    deployment["status"] = {"replicas": 2, "readyReplicas": 2}
    api.put("deployments", deployment)
    api.put(
        "endpointslices",
        {
            "metadata": {
                "name": f"{SERVICE}-abcde",
                "namespace": INSTALL_NAMESPACE,
                "labels": {"kubernetes.io/service-name": SERVICE},
            },
            "endpoints": [{"addresses": ["10.0.0.5"], "conditions": {"ready": True}}],
        },
    )
    api.put(
        "deployments",
        {
            "metadata": {"name": "multinode-webhook-certs", "namespace": INSTALL_NAMESPACE},
            "status": {"replicas": 1, "readyReplicas": 1},
        },
    )
