"""The Kubernetes client: credentials, and the few API calls the tools make, on raw JSON.

The only module that imports `kubernetes`. Objects are read and written as raw JSON
(`_preload_content=False`), never through the client's models, which drop the fields they do
not know.

It is long because it is, by an import contract, the one module that speaks to the Kubernetes
client: every call the project makes, and the follow loop warm start runs, are here.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError, MaxRetryError

from webhook.adapters.backoff import Backoff
from webhook.core.patch import PatchOp, to_json
from webhook.core.raw import mapping, string

DEFAULT_KUBECONFIG: Final = "~/.kube/config"
SERVICE_ACCOUNT_NAMESPACE: Final = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
NOT_FOUND: Final = 404
GONE: Final = 410
# A watch is renewed this often, and retried this long after an error.
WATCH_SECONDS: Final = 300
# A watch that sends nothing for this long (the API server sends bookmarks every minute or so)
# is taken as a connection dropped silently, and opened again.
WATCH_READ_SECONDS: Final = 120.0
# Between a failed or empty list or watch and the next, as client-go's reflector waits: from
# the first, doubling, to the most, each with up to half again at random; a watch that ran
# `HEALTHY_SECONDS` or brought an event starts the count again.
BACKOFF_FIRST: Final = 0.8
BACKOFF_MOST: Final = 30.0
HEALTHY_SECONDS: Final = 10.0
# The calls behind Events run one at a time, off admission: one that hangs must not hold the rest.
EVENT_TIMEOUT: Final = 5.0
# Any other call (check, the bootstrap's passes, a policy read from the cluster): seconds to
# connect, and to wait on a silent API server between bytes, before it is said unreachable;
# a pass that hung would never end, nor retry.
CALL_TIMEOUT: Final = (10.0, 60.0)


class KubeError(RuntimeError):
    """An API call failed; the message says which and why, in one line. `status` is the HTTP
    status the API server answered, None when there was no answer."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class Gone(Exception):
    """A watch whose resourceVersion expired: the kind is listed again."""


@dataclass(frozen=True, slots=True)
class Watched:
    """How a watch ended: the resourceVersion to go on from, and how many events it brought."""

    version: str
    events: int


def connect(*, kubeconfig: str | None = None, context: str | None = None) -> client.ApiClient:
    """In-cluster credentials in a pod, else the kubeconfig (given, $KUBECONFIG or ~/.kube)."""
    if kubeconfig is None and context is None:
        try:
            config.load_incluster_config()  # type: ignore[no-untyped-call]
            return client.ApiClient()
        except config.ConfigException:
            pass
    plugin = _PluginFailure()
    logging.getLogger().addHandler(plugin)
    try:
        with _reading_kubeconfig(kubeconfig) as path:
            config.load_kube_config(config_file=path, context=context)  # type: ignore[no-untyped-call]
    finally:
        logging.getLogger().removeHandler(plugin)
    if plugin.failure is not None:
        # The client logs a failed exec credential plugin and goes on without credentials.
        where = f" in {path}" if path else ""
        raise KubeError(f"no cluster credentials{where}: {plugin.failure}")
    return client.ApiClient()


@contextmanager
def _reading_kubeconfig(kubeconfig: str | None) -> Iterator[str | None]:
    """The kubeconfig to read (given, else $KUBECONFIG, else None: the client's default), and
    any error of the client reading it as one `KubeError` line naming the file."""
    # $KUBECONFIG read now: the client reads it once, when it is imported.
    path = kubeconfig or os.environ.get("KUBECONFIG")
    where = f" in {path}" if path else ""
    if kubeconfig is not None and not os.path.isfile(kubeconfig):
        raise KubeError(f"no cluster credentials: no kubeconfig file {kubeconfig}")
    try:
        yield path
    except (config.ConfigException, OSError) as error:
        raise KubeError(f"no cluster credentials{where}: {error}") from None
    except (
        TypeError,
        ValueError,
        AttributeError,
        KeyError,
        RecursionError,
        yaml.YAMLError,
    ) as error:
        # The client reads a kubeconfig of the wrong shape (or not YAML, or nested past the
        # YAML reader's depth) as far as it can, then fails inside.
        raise KubeError(
            f"no cluster credentials: {path or DEFAULT_KUBECONFIG} is not a kubeconfig "
            f"({type(error).__name__}: {' '.join(str(error).split())})"
        ) from None


class _PluginFailure(logging.Handler):
    """The first error the client logs (on the root logger) of its exec credential plugin."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.failure: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if self.failure is None and message.startswith("exec:"):
            first = next((line for line in message.splitlines() if line.strip()), message)
            self.failure = f"the credential plugin failed: {' '.join(first.split())}"


def current_namespace(*, kubeconfig: str | None = None, context: str | None = None) -> str | None:
    """$POD_NAMESPACE, else the namespace of the pod's service account, else the namespace of
    the kubeconfig's context (given, else the current one), else None. A kubeconfig that is
    not there or not one is a `KubeError` naming it, in `connect`'s words."""
    if os.environ.get("POD_NAMESPACE"):
        return os.environ["POD_NAMESPACE"]
    try:
        return SERVICE_ACCOUNT_NAMESPACE.read_text().strip() or None
    except OSError:
        pass
    with _reading_kubeconfig(kubeconfig) as path:
        if path is None and not Path(DEFAULT_KUBECONFIG).expanduser().exists():
            return None  # no kubeconfig at all: nothing names a namespace
        contexts, active = config.list_kube_config_contexts(  # type: ignore[no-untyped-call]
            config_file=path or DEFAULT_KUBECONFIG
        )
        chosen = (
            next((c for c in contexts if c.get("name") == context), None) if context else active
        )
        found = mapping(mapping(chosen).get("context")).get("namespace")
    return found if isinstance(found, str) and found else None


def _api_reason(error: ApiException) -> str:
    try:
        return str(json.loads(error.body or "").get("message") or error.reason)
    except (TypeError, ValueError):
        return str(error.reason)


def secret_data(secret: Mapping[str, Any] | None) -> dict[str, bytes]:
    """A Secret's `data`, decoded; entries that are not base64 are left out."""
    data = mapping(mapping(secret).get("data"))
    decoded: dict[str, bytes] = {}
    for key, value in data.items():
        try:
            decoded[key] = base64.b64decode(string(value), validate=True)
        except ValueError:
            continue
    return decoded


def _typed(item: dict[str, Any], listed: Mapping[str, Any]) -> dict[str, Any]:
    """A listed object with the kind and apiVersion its list names (built-in kinds' items
    carry neither)."""
    kind = string(listed.get("kind")).removesuffix("List")
    return {"apiVersion": listed.get("apiVersion"), "kind": kind, **item}


class Cluster:
    """The few API calls the webhook's tools make, on raw JSON."""

    def __init__(self, api: client.ApiClient) -> None:
        self.host = str(api.configuration.host)
        self.core = client.CoreV1Api(api)
        self.apps = client.AppsV1Api(api)
        self.admission = client.AdmissionregistrationV1Api(api)
        self.discovery = client.DiscoveryV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        # The watches `follow` has open, so that `stop_following` can end them at once.
        self._watches: set[Any] = set()
        self._watches_lock = threading.Lock()

    def _call(self, what: str, method: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        try:
            kwargs.setdefault("_request_timeout", CALL_TIMEOUT)
            response = method(*args, _preload_content=False, **kwargs)
        except ApiException as error:
            raise KubeError(
                f"{what}: {error.status} {_api_reason(error)}", status=error.status
            ) from None
        except (HTTPError, OSError) as error:
            reason = error.reason if isinstance(error, MaxRetryError) else error
            raise KubeError(f"cannot reach the API server at {self.host}: {reason}") from None
        found: dict[str, Any] = json.loads(response.data)
        return found

    def _read(self, what: str, method: Any, *args: Any, **kwargs: Any) -> dict[str, Any] | None:
        """The object, or None when there is none."""
        try:
            return self._call(what, method, *args, **kwargs)
        except KubeError as error:
            if error.status == NOT_FOUND:
                return None
            raise

    def secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The Secret, or None when there is none."""
        return self._read(
            f"read Secret {namespace}/{name}", self.core.read_namespaced_secret, name, namespace
        )

    def deployment(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The Deployment, or None when there is none."""
        return self._read(
            f"read Deployment {namespace}/{name}",
            self.apps.read_namespaced_deployment,
            name,
            namespace,
        )

    def endpoint_slices(self, namespace: str, service: str) -> list[dict[str, Any]]:
        """The EndpointSlices of a Service."""
        items: list[dict[str, Any]] = self._call(
            f"list EndpointSlices of Service {namespace}/{service}",
            self.discovery.list_namespaced_endpoint_slice,
            namespace,
            label_selector=f"kubernetes.io/service-name={service}",
        ).get("items", [])
        return items

    def create_secret(self, namespace: str, body: dict[str, Any]) -> None:
        name = body["metadata"]["name"]
        self._call(
            f"create Secret {namespace}/{name}", self.core.create_namespaced_secret, namespace, body
        )

    def replace_secret(self, namespace: str, body: dict[str, Any]) -> None:
        name = body["metadata"]["name"]
        self._call(
            f"update Secret {namespace}/{name}",
            self.core.replace_namespaced_secret,
            name,
            namespace,
            body,
        )

    def webhook_configuration(self, name: str) -> dict[str, Any]:
        return self._call(
            f"read MutatingWebhookConfiguration {name}",
            self.admission.read_mutating_webhook_configuration,
            name,
        )

    def patch_webhook_configuration(self, name: str, ops: Sequence[PatchOp]) -> None:
        self._call(
            f"patch MutatingWebhookConfiguration {name}",
            self.admission.patch_mutating_webhook_configuration,
            name,
            to_json(ops),
        )

    def namespaces(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self._call("list Namespaces", self.core.list_namespace).get(
            "items", []
        )
        return items

    def pods(self, namespace: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self._call(
            f"list Pods in {namespace}", self.core.list_namespaced_pod, namespace
        ).get("items", [])
        return items

    def replica_set(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The ReplicaSet, or None when there is none."""
        return self._read(
            f"read ReplicaSet {namespace}/{name}",
            self.apps.read_namespaced_replica_set,
            name,
            namespace,
        )

    def patch_deployment(self, namespace: str, name: str, ops: Sequence[PatchOp]) -> None:
        self._call(
            f"patch Deployment {namespace}/{name}",
            self.apps.patch_namespaced_deployment,
            name,
            namespace,
            to_json(ops),
        )

    def delete_pod(self, namespace: str, name: str) -> None:
        self._call(
            f"delete Pod {namespace}/{name}", self.core.delete_namespaced_pod, name, namespace
        )

    def objects(self, group: str, version: str, plural: str) -> list[dict[str, Any]]:
        """Every object of a kind in the cluster (all namespaces); none when the API server
        does not serve the kind (its CRD is not installed)."""
        found = self._read(
            f"list {plural}.{group}",
            self.custom.list_cluster_custom_object,
            group,
            version,
            plural,
        )
        items: list[dict[str, Any]] = (found or {}).get("items", [])
        return items

    def follow(
        self,
        group: str,
        version: str,
        plural: str,
        *,
        label_selector: str = "",
        seen: Callable[[dict[str, Any]], None],
        listed: Callable[[str | None], None],
        stop: threading.Event,
    ) -> None:
        """Hand each object of a kind, in every namespace, to `seen`: those there now, then each
        one as it is added or changed, until `stop` is set. `listed` is called once, after the
        first list, with None, or with why it failed (the list is then tried again). A kind the
        API server does not serve (its CRD is not installed) is listed as empty and not watched.
        """
        what = f"list {plural}.{group}"
        version_seen: str | None = None
        told = False
        backoff = Backoff(BACKOFF_FIRST, BACKOFF_MOST)
        while not stop.is_set():
            started = time.monotonic()
            try:
                if version_seen is None:
                    found = self._read(
                        what, self._list, group, version, plural, label_selector, None
                    )
                    for item in (found or {}).get("items", []):
                        seen(_typed(item, found or {}))
                    if not told:
                        told = True
                        listed(None)
                    if found is None:
                        return
                    version_seen = string(mapping(found.get("metadata")).get("resourceVersion"))
                started = time.monotonic()
                watched = self._watch(
                    (group, version, plural, label_selector), version_seen, seen=seen, stop=stop
                )
                if watched.events or time.monotonic() - started >= HEALTHY_SECONDS:
                    backoff.reset()
                else:  # an error in the stream, or a watch that ended at once
                    stop.wait(backoff.next())
                version_seen = watched.version
            except Gone:
                version_seen = None  # expired: listed again, after a wait
                stop.wait(backoff.next())
            except KubeError as error:
                if not told:
                    told = True
                    listed(str(error))
                # A watch that ran well before it failed (a connection cut after minutes)
                # starts the waits again.
                if time.monotonic() - started >= HEALTHY_SECONDS:
                    backoff.reset()
                stop.wait(backoff.next())

    def _list(
        self,
        group: str,
        version: str,
        plural: str,
        label_selector: str,
        resource_version: str | None,
        **kwargs: Any,
    ) -> Any:
        """The custom-objects API lists any kind, built-in ones too (`apps/v1 deployments`)."""
        if resource_version is not None:
            kwargs.update(watch=True, resource_version=resource_version)
            kwargs.update(allow_watch_bookmarks=True, timeout_seconds=WATCH_SECONDS)
        return self.custom.list_cluster_custom_object(
            group, version, plural, label_selector=label_selector, **kwargs
        )

    def _watch(
        self,
        kind: tuple[str, str, str, str],
        version_seen: str,
        *,
        seen: Callable[[dict[str, Any]], None],
        stop: threading.Event,
    ) -> Watched:
        """Follow one watch from `version_seen` to its end: the resourceVersion to go on from
        and how many events came; `Gone` when the watch expired and the kind must be listed
        again."""
        group, version, plural, selector = kind
        response = None
        events = 0
        try:
            response = self._list(
                group,
                version,
                plural,
                selector,
                version_seen,
                _preload_content=False,
                _request_timeout=(EVENT_TIMEOUT, WATCH_READ_SECONDS),
            )
            with self._watches_lock:
                if stop.is_set():
                    response.shutdown()
                self._watches.add(response)
            for line in response:
                if stop.is_set():
                    break
                event = json.loads(line)
                found = mapping(event.get("object"))
                if event.get("type") == "ERROR":
                    if found.get("code") == GONE:
                        raise Gone(plural)
                    return Watched(version_seen, 0)  # an error: waited out, then watched again
                events += 1
                version_seen = string(mapping(found.get("metadata")).get("resourceVersion"))
                if event.get("type") in ("ADDED", "MODIFIED"):
                    seen(dict(found))
        except ApiException as error:
            if error.status == GONE:
                raise Gone(plural) from None
            raise KubeError(
                f"watch {plural}.{group}: {error.status} {_api_reason(error)}"
            ) from None
        except (HTTPError, OSError, ValueError) as error:
            raise KubeError(f"watch {plural}.{group}: {error}") from None
        finally:
            with self._watches_lock:
                self._watches.discard(response)
        return Watched(version_seen, events)

    def stop_following(self) -> None:
        """End every watch `follow` has open now, from any thread; with its `stop` set, each
        `follow` then returns. An open watch would hold the API server's shutdown."""
        with self._watches_lock:
            for response in self._watches:
                response.shutdown()

    def deployments(self, *, label_selector: str) -> list[dict[str, Any]]:
        """The Deployments of every namespace that carry these labels."""
        items: list[dict[str, Any]] = self._call(
            f"list Deployments ({label_selector})",
            self.apps.list_deployment_for_all_namespaces,
            label_selector=label_selector,
        ).get("items", [])
        return items

    def custom_object(
        self, group: str, version: str, plural: str, namespace: str, name: str
    ) -> dict[str, Any] | None:
        """One namespaced object of a kind; None when there is none, or the API server does not
        serve the kind at this version."""
        return self._read(
            f"read {plural}.{group}/{version} {namespace}/{name}",
            self.custom.get_namespaced_custom_object,
            group,
            version,
            namespace,
            plural,
            name,
            _request_timeout=EVENT_TIMEOUT,
        )

    def event(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The Event, or None when there is none (it expired, or was never made)."""
        return self._read(
            f"read Event {namespace}/{name}",
            self.core.read_namespaced_event,
            name,
            namespace,
            _request_timeout=EVENT_TIMEOUT,
        )

    def create_event(self, namespace: str, body: dict[str, Any]) -> None:
        self._call(
            f"create Event {namespace}/{body['metadata']['name']}",
            self.core.create_namespaced_event,
            namespace,
            body,
            _request_timeout=EVENT_TIMEOUT,
        )

    def patch_event(self, namespace: str, name: str, ops: Sequence[PatchOp]) -> None:
        self._call(
            f"patch Event {namespace}/{name}",
            self.core.patch_namespaced_event,
            name,
            namespace,
            to_json(ops),
            _request_timeout=EVENT_TIMEOUT,
        )

    def pod(self, namespace: str, name: str) -> dict[str, Any]:
        return self._call(
            f"read Pod {namespace}/{name}", self.core.read_namespaced_pod, name, namespace
        )
