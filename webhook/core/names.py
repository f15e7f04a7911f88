"""Every name the webhook shares with Kubernetes, KServe and its own manifests, and the words
of its domain (actions, reasons, verdicts, modes, rules) as enums. KServe's kinds, and where
objects keep their pod templates, are in `webhook.core.kinds`.

Manifests, docs and tests compare against these, so a name changes in one place. The enums
are `StrEnum`s: each member is its wire string, so it is written to JSON, logs and metrics as
is, and a misspelled member is a type error rather than a silent mismatch.
"""

from enum import StrEnum
from typing import Final

PREFIX: Final = "multinode-webhook.io"

# Namespace label (selection) and pod opt-out label share one key.
INJECT_LABEL: Final = f"{PREFIX}/inject"
POD_OPT_OUT: Final = "false"

STATUS_ANNOTATION: Final = f"{PREFIX}/status"
# A compiled policy's record of the scripts it repairs (their shape digests), for `check`.
POLICY_SHAPES_ANNOTATION: Final = f"{PREFIX}/shapes"
# And of the presets whose scripts it repairs for every LLMInferenceService: where each came from.
POLICY_PRESETS_ANNOTATION: Final = f"{PREFIX}/presets"
# Names a problem the webhook sees but must not repair, for `kubectl describe pod`.
PROBLEM_ANNOTATION: Final = f"{PREFIX}/problem"

DEFAULT_OWN_NAMESPACE: Final = "multinode-webhook"
SYSTEM_NAMESPACES: Final = frozenset({"kube-system", "kube-public", "kube-node-lease"})

HTTPS_PORT: Final = 8443
HTTP_PORT: Final = 8080
PREVIEW_PORT: Final = 8444

# KServe facts.
ISVC_LABEL: Final = "serving.kserve.io/inferenceservice"
HEAD_CONTAINER: Final = "kserve-container"
WORKER_CONTAINER: Final = "worker-container"
DEFAULT_TARGET_CONTAINERS: Final = (HEAD_CONTAINER, WORKER_CONTAINER)

# KServe LLM facts (LLMInferenceService pods, DESIGN §2.1).
PART_OF_LABEL: Final = "app.kubernetes.io/part-of"
LLMISVC_PART_OF: Final = "llminferenceservice"
LLM_CONTAINER: Final = "main"
DEFAULT_LLM_CONTAINERS: Final = (LLM_CONTAINER,)
# The variable the LLM presets' eval re-parses on purpose.
LLM_EXTRA_ARGS_ENV: Final = "VLLM_ADDITIONAL_ARGS"

# Kubernetes facts.
MIRROR_ANNOTATION: Final = "kubernetes.io/config.mirror"
SHELL_DIRS: Final = ("", "/bin/", "/usr/bin/", "/usr/local/bin/")
SHELL_PATHS: Final = tuple(f"{d}{shell}" for shell in ("bash", "sh") for d in SHELL_DIRS)
CREATE: Final = "CREATE"


class Inject(StrEnum):
    """Values of the namespace label `multinode-webhook.io/inject`."""

    ENABLED = "enabled"
    SHADOW = "shadow"
    DISABLED = "disabled"


class Mode(StrEnum):
    """How the installation selects namespaces."""

    OPT_IN = "opt-in"
    CLUSTER_WIDE = "cluster-wide"


class Action(StrEnum):
    """What admission does to a pod (DESIGN §4, "Decisions")."""

    PATCHED = "patched"
    UNCHANGED = "unchanged"
    SKIPPED = "skipped"
    SHADOW = "shadow"


class Reason(StrEnum):
    """Why, in the order selection tests them (DESIGN §4); from ALREADY_MIGRATED on they also
    classify a container. LOSSY_ARGS means it is rewritten: its args would not arrive exactly,
    in any of the shapes of DESIGN §2 (legacy and post-fix alike)."""

    NAMESPACE_NOT_SELECTED = "namespace-not-selected"
    NOT_POD_CREATE = "not-pod-create"
    SYSTEM_NAMESPACE = "system-namespace"
    MIRROR_POD = "mirror-pod"
    POD_OPTED_OUT = "pod-opted-out"
    NOT_KSERVE = "not-kserve"
    ALREADY_MIGRATED = "already-migrated"
    NOT_A_TARGET = "not-a-target"
    NO_LAUNCH_COMMAND = "no-launch-command"
    LAUNCH_IN_FUNCTION = "launch-in-function"
    READS_POSITIONAL_PARAMS = "reads-positional-params"
    SCRIPT_TOO_LARGE = "script-too-large"
    UNSUPPORTED_CHARACTERS = "unsupported-characters"
    PARSER_FAILED = "parser-failed"
    PARSE_TIMEOUT = "parse-timeout"
    SCRIPT_REPLACED = "script-replaced"
    ARGS_IGNORED = "args-ignored"
    LOSSY_ARGS = "lossy-args"


# A container left alone for these reasons may still lose its args: the response warns, and
# when no container is rewritten the first of them present names the pod's reason.
WARNED_REASONS: Final = (
    Reason.NO_LAUNCH_COMMAND,
    Reason.LAUNCH_IN_FUNCTION,
    Reason.READS_POSITIONAL_PARAMS,
    Reason.SCRIPT_TOO_LARGE,
    Reason.UNSUPPORTED_CHARACTERS,
    Reason.PARSER_FAILED,
    Reason.PARSE_TIMEOUT,
    Reason.SCRIPT_REPLACED,
    Reason.ARGS_IGNORED,
)


class Verdict(StrEnum):
    """The verdict of one selection step; a container's step has its `Reason` instead."""

    PASS = "pass"
    SKIP = "skip"


class Rule(StrEnum):
    """Rules the rewrite applies, as named in the status annotation and audit annotations."""

    SCRIPT_TO_COMMAND = "script-to-command"
    FORWARD_ARGS = "forward-args"
    EXACT_ARGS = "exact-args"
    MODEL_DEFAULT = "model-default"
