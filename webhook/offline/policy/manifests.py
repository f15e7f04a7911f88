"""The objects `policy` prints: the MutatingAdmissionPolicies (split across as many as
kube-apiserver's limits want) and their bindings by install mode."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Final

from webhook import __version__
from webhook.core import names
from webhook.core.names import Mode
from webhook.offline.policy.cel import policy_spec
from webhook.offline.policy.limits import Figures, PolicyTooLarge, figures
from webhook.offline.policy.shapes import Compiled, Shape

POLICY_NAME: Final = "multinode-webhook"
SHAPES_ANNOTATION: Final = names.POLICY_SHAPES_ANNOTATION
PRESETS_ANNOTATION: Final = names.POLICY_PRESETS_ANNOTATION
API_VERSION: Final = "admissionregistration.k8s.io/v1"


def binding(mode: Mode, *, name: str = POLICY_NAME) -> dict[str, Any]:
    """The binding of the policy `name`: the namespaces of the install mode, and the pod
    opt-out label."""
    if mode is Mode.OPT_IN:
        namespaces: dict[str, Any] = {
            "matchLabels": {names.INJECT_LABEL: str(names.Inject.ENABLED)}
        }
    else:
        namespaces = {
            "matchExpressions": [
                {
                    "key": "kubernetes.io/metadata.name",
                    "operator": "NotIn",
                    "values": sorted(names.SYSTEM_NAMESPACES),
                },
                {
                    "key": names.INJECT_LABEL,
                    "operator": "NotIn",
                    "values": [str(names.Inject.DISABLED), str(names.Inject.SHADOW)],
                },
            ]
        }
    return {
        "apiVersion": API_VERSION,
        "kind": "MutatingAdmissionPolicyBinding",
        "metadata": {"name": name},
        "spec": {
            "policyName": name,
            "matchResources": {
                "namespaceSelector": namespaces,
                "objectSelector": {
                    "matchExpressions": [
                        {
                            "key": names.INJECT_LABEL,
                            "operator": "NotIn",
                            "values": [names.POD_OPT_OUT],
                        }
                    ]
                },
            },
        },
    }


def _policy(shapes: Sequence[Shape], name: str, compiled: Compiled) -> dict[str, Any]:
    annotations = {
        f"{names.PREFIX}/version": __version__,
        SHAPES_ANNOTATION: _json(sorted({shape.digest for shape in shapes})),
    }
    presets = sorted(
        {
            source
            for shape in shapes
            if shape.pattern is not None
            for source in compiled.sources(shape)
        }
    )
    if presets:
        annotations[PRESETS_ANNOTATION] = _json(presets)
    return {
        "apiVersion": API_VERSION,
        "kind": "MutatingAdmissionPolicy",
        "metadata": {"name": name, "annotations": annotations},
        "spec": policy_spec(shapes, options=compiled.options),
    }


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _name(number: int) -> str:
    return POLICY_NAME if number == 0 else f"{POLICY_NAME}-{number + 1}"


def split(compiled: Compiled) -> list[tuple[dict[str, Any], Figures]]:
    """The policies that hold the compiled shapes, each within kube-apiserver's limits:
    shapes are added to a policy in order while it fits, then to the next. Raises
    `PolicyTooLarge` for a shape that fits in no policy."""

    def built(shapes: Sequence[Shape], number: int) -> tuple[dict[str, Any], Figures]:
        policy = _policy(shapes, _name(number), compiled)
        return policy, figures(policy, shapes)

    groups: list[list[Shape]] = []
    for shape in compiled.shapes:
        if groups and built([*groups[-1], shape], len(groups) - 1)[1].over() is None:
            groups[-1].append(shape)
            continue
        over = built([shape], len(groups))[1].over()
        if over is not None:
            raise PolicyTooLarge(
                f"{shape.source} {shape.name}: its script alone makes a policy of {over}; "
                "leave it to the webhook"
            )
        groups.append([shape])
    return [built(group, number) for number, group in enumerate(groups)]


def policy_objects(compiled: Compiled, *, mode: Mode) -> list[dict[str, Any]]:
    """The MutatingAdmissionPolicies and their bindings, for `kubectl apply -f -`: one pair
    unless kube-apiserver's limits want the scripts split across several."""
    return with_bindings(split(compiled), mode=mode)


def with_bindings(
    policies: Sequence[tuple[dict[str, Any], Figures]], *, mode: Mode
) -> list[dict[str, Any]]:
    """Each policy of `split`, followed by its binding."""
    return [
        item
        for policy, _ in policies
        for item in (policy, binding(mode, name=policy["metadata"]["name"]))
    ]
