"""Pod-create latency on a real kube-apiserver: with the compiled policy, with the webhook, and
with neither, in one run.

  KUBEBUILDER_ASSETS=DIR python bench/admission_latency.py            # 3 rounds of 200 pods
  KUBEBUILDER_ASSETS=DIR python bench/admission_latency.py --pods 500 --rounds 5
  KUBEBUILDER_ASSETS=DIR python bench/admission_latency.py --events   # the webhook, Events off/on

The API server and etcd come from KUBEBUILDER_ASSETS, as in the e2e tests. The pod is the
example legacy head pod rendered from examples/legacy-servingruntime.yaml; each is created with
`dryRun=All` (admission runs in full, nothing is stored), one after another, and timed at the
client. Rounds alternate the three setups: neither, the webhook (`serve` on 127.0.0.1, called
by URL), and the policy compiled from the example runtime (no webhook registered).

With `--events`, rounds alternate the webhook with Events off (`--events=false`) and on (as the
cluster's admin, through a kubeconfig). A dryRun create sends no Event, so these pods are
stored, and deleted after each round; every pod names one InferenceService, so Events on
write one series, counted up every 10 seconds while pods keep coming.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support import envtest, kserve, servers
from tests.support.envtest import register_webhook, started
from webhook.core import names
from webhook.core.names import Mode
from webhook.offline.policy import compile_shapes, policy_objects

ADMISSION = "/apis/admissionregistration.k8s.io/v1"
RUNTIME = Path(__file__).resolve().parents[1] / "examples" / "legacy-servingruntime.yaml"
NAMESPACE = "latency"


def timed(
    client: httpx.Client, pod: dict[str, Any], count: int, *, stored: bool = False
) -> list[float]:
    """Milliseconds each of `count` pod creations took (dry runs, unless `stored`)."""
    took = []
    params = {} if stored else {"dryRun": "All"}
    for serial in range(count):
        body = copy.deepcopy(pod)
        body["metadata"] = {**body["metadata"], "name": f"p{serial}", "namespace": NAMESPACE}
        started_at = time.perf_counter()
        reply = client.post(f"/api/v1/namespaces/{NAMESPACE}/pods", json=body, params=params)
        took.append((time.perf_counter() - started_at) * 1e3)
        assert reply.status_code == 201, reply.text
    return took


def repaired(client: httpx.Client, pod: dict[str, Any]) -> bool:
    body = {**pod, "metadata": {**pod["metadata"], "name": "probe", "namespace": NAMESPACE}}
    reply = client.post(f"/api/v1/namespaces/{NAMESPACE}/pods", json=body, params={"dryRun": "All"})
    return names.STATUS_ANNOTATION in reply.json()["metadata"].get("annotations", {})


def until(check: Any) -> None:
    deadline = time.monotonic() + 30
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit("the setup did not take effect")
        time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pods", type=int, default=200, help="pods per setup and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--events", action="store_true", help="compare the webhook with Events off and on"
    )
    args = parser.parse_args()
    if not envtest.AVAILABLE:
        parser.exit(2, f"admission_latency: {envtest.MISSING}\n")
    runtime = yaml.safe_load(RUNTIME.read_text())
    pod = kserve.build_pod(runtime, role="head", user_args=["--max-model-len=4096"])
    if args.events:
        report(events_rounds(pod, pods=args.pods, rounds=args.rounds))
        return
    policy, binding = policy_objects(compile_shapes([(RUNTIME.name, runtime)]), mode=Mode.OPT_IN)
    results: dict[str, list[float]] = {"neither": [], "webhook": [], "policy": []}
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        for cluster in started(work):
            with cluster.client() as client, servers.running(work / "serve") as live:
                labels = {names.INJECT_LABEL: "enabled"}
                namespace = {"name": NAMESPACE, "labels": labels}
                client.post(
                    "/api/v1/namespaces",
                    json={"apiVersion": "v1", "kind": "Namespace", "metadata": namespace},
                )
                timed(client, pod, 20)  # warm up the API server
                for number in range(1, args.rounds + 1):
                    until(lambda: not repaired(client, pod))
                    results["neither"] += timed(client, pod, args.pods)

                    register_webhook(client, live.https_port, live.ca_pem)
                    until(lambda: repaired(client, pod))
                    results["webhook"] += timed(client, pod, args.pods)
                    client.delete(f"{ADMISSION}/mutatingwebhookconfigurations/multinode-webhook")

                    for plural, body in (
                        ("mutatingadmissionpolicies", policy),
                        ("mutatingadmissionpolicybindings", binding),
                    ):
                        client.post(f"{ADMISSION}/{plural}", json=body)
                    until(lambda: repaired(client, pod))
                    results["policy"] += timed(client, pod, args.pods)
                    for plural, body in (
                        ("mutatingadmissionpolicybindings", binding),
                        ("mutatingadmissionpolicies", policy),
                    ):
                        client.delete(f"{ADMISSION}/{plural}/{body['metadata']['name']}")
                    print(f"round {number} done", file=sys.stderr)
            break
    report(results)


def events_rounds(pod: dict[str, Any], *, pods: int, rounds: int) -> dict[str, list[float]]:
    """Stored pod creations through the webhook, with Events off and on, rounds alternating."""
    results: dict[str, list[float]] = {"events off": [], "events on": []}
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        for cluster in started(work):
            os.environ["KUBECONFIG"] = str(envtest.kubeconfig_for(cluster, work / "kubeconfig"))
            with (
                cluster.client() as client,
                servers.running(work / "off", events=False, warm_up=False) as off,
                servers.running(work / "on", warm_up=False) as on,
            ):
                namespace = {"name": NAMESPACE, "labels": {names.INJECT_LABEL: "enabled"}}
                client.post(
                    "/api/v1/namespaces",
                    json={"apiVersion": "v1", "kind": "Namespace", "metadata": namespace},
                )
                timed(client, pod, 20)  # warm up the API server
                for number in range(1, rounds + 1):
                    # Each setup goes first in every other round: the first after a round's
                    # pods are deleted meets a busier API server.
                    order = [("events off", off), ("events on", on)]
                    for setup, live in order if number % 2 else order[::-1]:
                        register_webhook(client, live.https_port, live.ca_pem)
                        until(lambda: repaired(client, pod))
                        results[setup] += timed(client, pod, pods, stored=True)
                        client.delete(f"/api/v1/namespaces/{NAMESPACE}/pods")
                        until(
                            lambda: (
                                not client.get(f"/api/v1/namespaces/{NAMESPACE}/pods").json()[
                                    "items"
                                ]
                            )
                        )
                    print(f"round {number} done", file=sys.stderr)
                written = on.state.metrics.registry.get_sample_value(
                    "multinode_webhook_events_written_total",
                    {"type": "Normal", "reason": "ArgsRepaired"},
                )
                print(f"Events written with Events on: {written or 0:.0f}", file=sys.stderr)
            break
    return results


def report(results: dict[str, list[float]]) -> None:
    base = statistics.median(next(iter(results.values())))
    for setup, took in results.items():
        ordered = sorted(took)
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
        p50 = statistics.median(ordered)
        print(
            f"{setup:10} p50 {p50:6.2f} ms ({p50 - base:+5.2f})   p99 {p99:6.2f} ms"
            f"   ({len(took)} pods)"
        )


if __name__ == "__main__":
    main()
