"""The fail-open alert on a real Prometheus (Debian's `prometheus` package) scraping the envtest
kube-apiserver and a real `serve`: with the webhook stopped, a pod created is admitted without
it, kube-apiserver counts it, and `MultinodeWebhookFailedOpen` fires; with the webhook serving
again, it resolves.

The rules are those of `deploy/components/monitoring` as kustomize renders them, with their
10-minute windows scaled to 20 seconds so that the alert resolves within the test; Prometheus
scrapes and evaluates every second.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.support import servers
from tests.support.builders import example
from tests.support.envtest import ENVTEST, Cluster, register_webhook
from tests.support.install import rendered_alert_rules
from tests.support.poll import wait
from webhook.core import names
from webhook.core.names import Inject

PROMETHEUS = shutil.which("prometheus")
pytestmark = [
    ENVTEST,
    pytest.mark.skipif(
        PROMETHEUS is None,
        reason="prometheus not installed (Debian package prometheus; .ci/run installs it)",
    ),
]

NAMESPACE = "paged"
ALERT = "MultinodeWebhookFailedOpen"
WINDOW = "20s"


def _scaled(rule: dict[str, Any]) -> dict[str, Any]:
    """The rule groups, each 10-minute window and offset made `WINDOW` long."""
    groups = rule["spec"]["groups"]
    for group in groups:
        for entry in group["rules"]:
            entry["expr"] = entry["expr"].replace("[10m]", f"[{WINDOW}]")
            entry["expr"] = entry["expr"].replace("offset 10m", f"offset {WINDOW}")
    return {"groups": groups}


@contextlib.contextmanager
def _prometheus(work: Path, cluster: Cluster, webhook_metrics: int) -> Iterator[httpx.Client]:
    """A Prometheus scraping the API server (as its admin) and the webhook's /metrics."""
    (work / "rules.yaml").write_text(yaml.safe_dump(_scaled(rendered_alert_rules(work))))
    api = cluster.url.removeprefix("https://")
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(work / "rules.yaml")],
        "scrape_configs": [
            {
                "job_name": "apiserver",
                "scheme": "https",
                "tls_config": {"insecure_skip_verify": True},
                "authorization": {"credentials": cluster.token},
                "static_configs": [{"targets": [api]}],
            },
            {
                "job_name": "multinode-webhook",
                "static_configs": [{"targets": [f"127.0.0.1:{webhook_metrics}"]}],
            },
        ],
    }
    (work / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = servers.free_port()
    with (
        (work / "prometheus.log").open("w") as log,
        subprocess.Popen(
            [
                str(PROMETHEUS),
                f"--config.file={work / 'prometheus.yml'}",
                f"--storage.tsdb.path={work / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        ) as process,
        httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client,
    ):
        try:

            def ready() -> bool:
                with contextlib.suppress(httpx.TransportError):
                    return client.get("/-/ready").status_code == 200
                return False

            wait(ready, "Prometheus to be ready", 60)
            yield client
        finally:
            process.terminate()
            process.wait(30)


def _state(prometheus: httpx.Client) -> str | None:
    """The alert's state (pending, firing), or None when it is not active."""
    alerts = prometheus.get("/api/v1/alerts").json()["data"]["alerts"]
    states = {a["state"] for a in alerts if a["labels"]["alertname"] == ALERT}
    return "firing" if "firing" in states else next(iter(states), None)


def _value(prometheus: httpx.Client, query: str) -> float | None:
    result = prometheus.get("/api/v1/query", params={"query": query}).json()["data"]["result"]
    return float(result[0]["value"][1]) if result else None


def _serving(client: httpx.Client, live: servers.Running) -> None:
    register_webhook(client, live.https_port, live.ca_pem)
    probe = _pod("probe")

    def called() -> bool:
        reply = client.post(
            f"/api/v1/namespaces/{NAMESPACE}/pods", json=probe, params={"dryRun": "All"}
        )
        return names.STATUS_ANNOTATION in reply.json()["metadata"].get("annotations", {})

    wait(called, "the webhook to be called")


def _pod(name: str) -> dict[str, Any]:
    pod = example("legacy-head-pod.yaml")
    pod["metadata"] = {**pod["metadata"], "name": name, "namespace": NAMESPACE}
    return pod


def test_the_fail_open_alert_fires_while_the_webhook_is_down_and_resolves(
    cluster: Cluster, tmp_path: Path
) -> None:
    with cluster.client() as client:
        namespace = {
            "metadata": {"name": NAMESPACE, "labels": {names.INJECT_LABEL: Inject.ENABLED}}
        }
        reply = client.post("/api/v1/namespaces", json=namespace)
        assert reply.status_code in (201, 409), reply.text
        with contextlib.ExitStack() as first:
            live = first.enter_context(
                servers.running(tmp_path / "first", warm_up=False, events=False)
            )
            _serving(client, live)
            with _prometheus(tmp_path, cluster, live.http_port) as prometheus:
                # Our metrics are scraped: the replica says it is ready.
                wait(
                    lambda: _value(prometheus, "multinode_webhook_ready") == 1.0,
                    "Prometheus to scrape the webhook",
                    60,
                )
                # Fail-opens of earlier tests on this API server age out of the window.
                wait(lambda: _state(prometheus) is None, "the alert to be quiet", 90)
                # The webhook stops: a pod is admitted as it is, and the API server counts it.
                first.close()
                pods = f"/api/v1/namespaces/{NAMESPACE}/pods"
                reply = client.post(pods, json=_pod("unrepaired"))
                assert reply.status_code == 201, reply.text
                assert reply.json()["spec"]["containers"][0]["command"] == ["bash", "-c"]
                wait(lambda: _state(prometheus) == "firing", f"{ALERT} to fire", 60)
                with servers.running(tmp_path / "second", warm_up=False, events=False) as again:
                    _serving(client, again)
                    reply = client.post(pods, json=_pod("repaired"))
                    assert names.STATUS_ANNOTATION in reply.json()["metadata"]["annotations"]
                    wait(lambda: _state(prometheus) is None, f"{ALERT} to resolve", 90)
