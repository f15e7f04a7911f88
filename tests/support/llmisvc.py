"""KServe's LLMInferenceServiceConfig presets (the shared corpus), and the pods KServe builds
from them: the preset merged with an LLMInferenceService (containers by name, `args` replaced
whole), rendered as a Go template over its JSON text, then one pod per role.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import pytest
import yaml

from tests.support.builders import REPO, SAFE_LOADER
from webhook.core import names
from webhook.core.raw import at
from webhook.offline import gotemplate, llmrender

CORPUS: Final = REPO.parent / "shared" / "fixtures" / "kserve-llmisvc"
NAME: Final = "granite"
NAMESPACE: Final = "models"
MODEL: Final = "ibm/granite-3b"

# Where each role's pod template sits in a preset's spec, and the component label it gets.
ROLES: Final = {
    "leader": (("template",), "llminferenceservice-workload-leader"),
    "worker": (("worker",), "llminferenceservice-workload-worker"),
    "prefill-leader": (("prefill", "template"), "llminferenceservice-workload-leader-prefill"),
    "prefill-worker": (("prefill", "worker"), "llminferenceservice-workload-worker-prefill"),
}
# Presets with the script in args and no `$@` (KServe v0.16 data-parallel, RHOAI 2.25-3.3).
SCRIPT_IN_ARGS_PREFIXES: Final = (
    "kserve-v0.16.0-config-llm-decode-worker",
    "kserve-v0.16.0-config-llm-prefill-worker",
    "kserve-v0.16.0-config-llm-worker",
    "rhoai-2.25-",
    "rhoai-3.0-",
    "rhoai-3.2-",
    "rhoai-3.3-",
)
# Presets that run `vllm serve` with no shell.
EXEC_PREFIXES: Final = tuple(
    f"kserve-{release}-config-llm-{preset}-template"
    for release in ("v0.16.0", "v0.17.0", "v0.17.1")
    for preset in ("decode", "prefill")
) + tuple(f"kserve-{r}-config-llm-template" for r in ("v0.16.0", "v0.17.0", "v0.17.1"))


def preset_files() -> list[Path]:
    """Every preset of the shared corpus, or a skip naming what is missing."""
    if not CORPUS.is_dir():
        pytest.skip(
            f"shared LLM preset corpus not found at {CORPUS} (only CI and developers have it)"
        )
    return sorted(CORPUS.glob("*.yaml"))


def shape(path: Path) -> str:
    """The preset's shape: "exec", "script-in-args" or "eval"."""
    if path.name.startswith(EXEC_PREFIXES):
        return "exec"
    if path.name.startswith(SCRIPT_IN_ARGS_PREFIXES):
        return "script-in-args"
    return "eval"


def _spec_at(spec: Mapping[str, Any], path: Sequence[str]) -> dict[str, Any] | None:
    found = at(spec, path)
    return found if isinstance(found, dict) else None


def roles(config: Mapping[str, Any]) -> list[str]:
    """The roles whose pod templates the preset holds."""
    return [role for role, (path, _) in ROLES.items() if _spec_at(config["spec"], path)]


PARALLELISM: Final = {"data": 2, "dataLocal": 1, "tensor": 2, "expert": False, "dataRPCPort": 0}


@dataclass(frozen=True)
class Identity:
    """What an LLMInferenceService writes into the scripts of the pods rendered for it."""

    name: str = NAME
    namespace: str = NAMESPACE
    model: str = MODEL
    parallelism: Mapping[str, Any] = field(default_factory=lambda: dict(PARALLELISM))
    tls: bool = True


GRANITE: Final = Identity()
# A second service: every value the presets write differs, and TLS is off.
LLAMA: Final = Identity(
    name="llama-chat",
    namespace="team-b",
    model="meta-llama/Llama-3.1-8B-Instruct",
    parallelism={"data": 8, "dataLocal": 4, "tensor": 4, "expert": True, "dataRPCPort": 5557},
    tls=False,
)


def service(
    config: Mapping[str, Any],
    *,
    args: Mapping[str, Sequence[str]] | None = None,
    identity: Identity = GRANITE,
) -> dict[str, Any]:
    """An LLMInferenceService of the preset's shape, whose `main` containers carry `args` by
    role (the roles of ROLES)."""
    spec: dict[str, Any] = {
        "model": {"name": identity.model},
        "parallelism": dict(identity.parallelism),
    }
    if "prefill" in config["spec"]:
        spec["prefill"] = {"parallelism": dict(identity.parallelism)}
    for role, given in (args or {}).items():
        path, _ = ROLES[role]
        workload = spec
        for step in path[:-1]:
            workload = workload.setdefault(step, {})
        main = {"name": names.LLM_CONTAINER, "args": list(given)}
        workload[path[-1]] = {"containers": [main]}
    return {
        "apiVersion": "serving.kserve.io/v1alpha2",
        "kind": "LLMInferenceService",
        "metadata": {"name": identity.name, "namespace": identity.namespace},
        "spec": spec,
    }


def rendered(
    config: Mapping[str, Any],
    *,
    args: Mapping[str, Sequence[str]] | None = None,
    tls: bool = True,
    identity: Identity = GRANITE,
) -> dict[str, Any]:
    """The preset's spec merged with an LLMInferenceService whose `main` container carries
    `args` by role, then rendered as KServe renders it (the product's merge and template)."""
    own = service(config, args=args, identity=identity)
    merged = llmrender.merge(
        config["spec"],
        {k: v for k, v in own["spec"].items() if k in ("template", "worker", "prefill")},
    )
    text = json.dumps(merged, ensure_ascii=False)
    out: dict[str, Any] = json.loads(gotemplate.render(text, llmrender.template_data(own, tls=tls)))
    return out


def build_pod(
    config: Mapping[str, Any],
    *,
    role: str,
    user_args: Sequence[str] | None = None,
    tls: bool = True,
    identity: Identity = GRANITE,
) -> dict[str, Any]:
    """The pod KServe (through its LeaderWorkerSet or Deployment) creates for `role`, with the
    LLMInferenceService's args for that role; TLS is on unless `tls` or the identity's is off."""
    spec = rendered(
        config,
        args={role: user_args} if user_args is not None else None,
        tls=tls and identity.tls,
        identity=identity,
    )
    path, component = ROLES[role]
    template = _spec_at(spec, path)
    assert template is not None, role
    single = "worker" not in spec and "worker" not in (spec.get("prefill") or {})
    labels = {
        names.PART_OF_LABEL: names.LLMISVC_PART_OF,
        "app.kubernetes.io/name": identity.name,
        "app.kubernetes.io/component": (
            "llminferenceservice-workload" + ("-prefill" if "prefill" in role else "")
            if single
            else component
        ),
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{identity.name}-{role}-0",
            "namespace": identity.namespace,
            "labels": labels,
        },
        "spec": template,
    }


def load(path: Path) -> dict[str, Any]:
    config = yaml.load(path.read_text(), Loader=SAFE_LOADER)
    assert isinstance(config, dict), path
    assert config.get("kind") == "LLMInferenceServiceConfig", path
    return config


# What a LeaderWorkerSet's own pod webhook adds to every pod, after ours or before it.
LWS_ENV: Final = {
    "LWS_LEADER_ADDRESS": "localhost",
    "LWS_GROUP_SIZE": "2",
    "LWS_WORKER_INDEX": "0",
    "DP_ADDRESS_RESOLVE_ATTEMPTS": "1",
}


# Small presets of the two shell shapes, for the tests that run without the shared corpus.
SMALL_EVAL_SCRIPT = 'eval "vllm serve /mnt/models --served-model-name {{ .Spec.Model.Name }} $@"'


def _small_preset(name: str, main: dict[str, Any]) -> dict[str, Any]:
    """A preset of the eval shape (script in command) or of the script-in-args one."""
    return {
        "apiVersion": "serving.kserve.io/v1alpha2",
        "kind": "LLMInferenceServiceConfig",
        "metadata": {"name": name},
        "spec": {"template": {"containers": [{"name": names.LLM_CONTAINER, "image": "i", **main}]}},
    }


def small_service(args: list[str]) -> dict[str, Any]:
    """A single-node LLMInferenceService whose `main` carries `args`."""
    return {
        "apiVersion": "serving.kserve.io/v1alpha2",
        "kind": "LLMInferenceService",
        "metadata": {"name": "granite", "namespace": "models"},
        "spec": {
            "model": {"name": "ibm/granite"},
            "template": {"containers": [{"name": names.LLM_CONTAINER, "args": args}]},
        },
    }


EVAL_PRESET = _small_preset(
    "kserve-config-llm-template", {"command": ["/bin/bash", "-c", SMALL_EVAL_SCRIPT, "--"]}
)
SCRIPT_IN_ARGS_PRESET = _small_preset(
    "kserve-config-llm-template", {"command": ["/bin/bash", "-c"], "args": [SMALL_EVAL_SCRIPT]}
)
