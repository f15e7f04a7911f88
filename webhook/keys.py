"""Every name the webhook shares with Kubernetes, KServe and its own manifests.

Manifests, docs and tests compare against these constants, so a name changes in one place.
"""

from typing import Final

PREFIX: Final = "multinode-webhook.io"

# Namespace label (selection) and pod opt-out label share one key.
INJECT_LABEL: Final = f"{PREFIX}/inject"
NAMESPACE_ENABLED: Final = "enabled"
NAMESPACE_SHADOW: Final = "shadow"
NAMESPACE_DISABLED: Final = "disabled"
POD_OPT_OUT: Final = "false"

STATUS_ANNOTATION: Final = f"{PREFIX}/status"

MODE_OPT_IN: Final = "opt-in"
MODE_CLUSTER_WIDE: Final = "cluster-wide"
MODES: Final = (MODE_OPT_IN, MODE_CLUSTER_WIDE)

DEFAULT_OWN_NAMESPACE: Final = "multinode-webhook"
SYSTEM_NAMESPACES: Final = frozenset({"kube-system", "kube-public", "kube-node-lease"})

HTTPS_PORT: Final = 8443
HTTP_PORT: Final = 8080

# KServe facts.
ISVC_LABEL: Final = "serving.kserve.io/inferenceservice"
HEAD_CONTAINER: Final = "kserve-container"
WORKER_CONTAINER: Final = "worker-container"
DEFAULT_TARGET_CONTAINERS: Final = (HEAD_CONTAINER, WORKER_CONTAINER)

# Kubernetes facts.
MIRROR_ANNOTATION: Final = "kubernetes.io/config.mirror"
BASH_PATHS: Final = ("bash", "/bin/bash", "/usr/bin/bash", "/usr/local/bin/bash")

# Decisions.
PATCHED: Final = "patched"
UNCHANGED: Final = "unchanged"
SKIPPED: Final = "skipped"
SHADOW: Final = "shadow"
DECISIONS: Final = (PATCHED, UNCHANGED, SKIPPED, SHADOW)

# Reasons, in the order selection tests them (DESIGN §4).
NAMESPACE_NOT_SELECTED: Final = "namespace-not-selected"
NOT_POD_CREATE: Final = "not-pod-create"
SYSTEM_NAMESPACE: Final = "system-namespace"
MIRROR_POD: Final = "mirror-pod"
POD_OPTED_OUT: Final = "pod-opted-out"
NOT_KSERVE: Final = "not-kserve"
ALREADY_MIGRATED: Final = "already-migrated"
NOT_A_TARGET: Final = "not-a-target"
NO_LAUNCH_COMMAND: Final = "no-launch-command"
LEGACY_SHAPE: Final = "legacy-shape"

# Rules the rewrite applies, as named in the status annotation and audit annotations.
RULE_SCRIPT_TO_COMMAND: Final = "script-to-command"
RULE_FORWARD_ARGS: Final = "forward-args"
RULE_MODEL_DEFAULT: Final = "model-default"
