"""The typed, read-only view of what admission reads of a review and its pod: declared once.

The server decodes a request body straight into `ReviewView` (msgspec): the fields below are
built, every other one (managedFields, env, probes, volumes: most of a pod) is skipped by the
decoder and never materialised. The offline front ends hold documents already, and build the
same view with `pod_view`. The core reads pods only through `PodView`.

A field the core reads defensively (a label map, a container's command) is typed `Any`: a value
of the wrong type is kept as it came, for the core to read as absent or to report, as it always
has. A field of a declared object type that holds something else fails the typed decode; the
server then falls back to the full parse, whose errors name the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from msgspec import Struct


class ContainerView(Struct, frozen=True, gc=False):
    """The fields of a container the rewrite reads."""

    name: Any = None
    command: Any = None
    args: Any = None


class MetadataView(Struct, frozen=True, gc=False):
    """The fields of a pod's metadata that selection reads."""

    name: Any = None
    generateName: Any = None
    namespace: Any = None
    labels: Any = None
    annotations: Any = None


class SpecView(Struct, frozen=True, gc=False):
    """A pod's containers, each at its position: a patch points into them by index."""

    containers: list[ContainerView] | None = None


class PodView(Struct, frozen=True, gc=False):
    """What admission reads of a pod. `metadata` None: the pod has none (or not an object)."""

    metadata: MetadataView | None = None
    spec: SpecView | None = None


class RequestView(Struct, frozen=True, gc=False):
    """The fields of an AdmissionReview's `request` the webhook reads, as sent."""

    uid: Any = None
    kind: Any = None
    namespace: Any = None
    name: Any = None
    operation: Any = None
    dryRun: Any = None
    object: PodView | None = None


class ReviewView(Struct, frozen=True, gc=False):
    """An AdmissionReview as the server decodes it."""

    apiVersion: Any = None
    kind: Any = None
    request: RequestView | None = None


def container_view(container: object) -> ContainerView:
    """A container's view; an item that is not an object reads as a container with no name."""
    if not isinstance(container, dict):
        return ContainerView()
    return ContainerView(container.get("name"), container.get("command"), container.get("args"))


def pod_view(pod: Mapping[str, Any]) -> PodView:
    """The view of a pod held as a plain dict: every field the decoder would have kept."""
    metadata = pod.get("metadata")
    spec = pod.get("spec")
    containers = spec.get("containers") if isinstance(spec, dict) else None
    return PodView(
        MetadataView(
            metadata.get("name"),
            metadata.get("generateName"),
            metadata.get("namespace"),
            metadata.get("labels"),
            metadata.get("annotations"),
        )
        if isinstance(metadata, dict)
        else None,
        SpecView([container_view(c) for c in containers] if isinstance(containers, list) else None)
        if isinstance(spec, dict)
        else None,
    )


def pod_name(pod: PodView) -> str:
    """A pod's name for people: its name, else its generateName, else empty."""
    metadata = pod.metadata
    if metadata is None:
        return ""
    for value in (metadata.name, metadata.generateName):
        if isinstance(value, str) and value:
            return value
    return ""
