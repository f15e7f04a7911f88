"""The policy compiler: the repair of known scripts as a MutatingAdmissionPolicy that the API
server runs itself (DESIGN §7.3): no server, no certificates, no fail-open window.

Each container the inputs hold (runtimes, pods, workloads) is a *shape*: its family
(InferenceService or LLMInferenceService pod), name, `command` and, for the legacy shape, the
script in `args[0]`. The core decides a pod of that shape; the policy matches the shape exactly
and applies the core's result, precomputed: the new `command`, the script's removal from `args`,
and the status annotation (whose digest depends on the container's position, so one is kept for
each of the first `POSITIONS`).

A preset (LLMInferenceServiceConfig) is compiled once for every LLMInferenceService: its script
is a pattern (`webhook.offline.preset_patterns`) that the policy reads each pod's script against, in
CEL, as `webhook.core.pattern` reads it, and the repair is a list of edits inside the
pattern's literal runs. A rendered workload the preset already repairs adds nothing.

A pod the policy does not recognise is left alone, so it may cover fewer pods than the webhook,
never differently. It leaves to the webhook:

- a pod with more than one container of a target name, or more than `POSITIONS` containers;
- an eval-shape pod with a newline in an arg (an arg that is only quoting around literal text
  is replaced by the word eval makes of it, as the webhook does, with the core's patterns);
- a pod whose script in `args` a service's args replaced (KServe v0.16, RHOAI 2.25 to 3.3):
  the webhook only marks it `script-replaced` with an annotation, which the policy does not;
- every script not given, and a preset whose template this compiler does not know (the reason
  is given).

The policies must fit kube-apiserver's limits (`Figures`): `split` spreads the shapes across as
many as they need. The same expressions are written with `JSONPatch{…}` for the API server or
with plain maps, so that they can be evaluated outside it (the tests do, with cel-python).

The package: `shapes` (what is compiled), `cel` (the policy's expressions), `limits` (what the
API server accepts) and `manifests` (the objects printed).
"""

from webhook.offline.policy.cel import jsonpatch_map, jsonpatch_message, policy_spec
from webhook.offline.policy.limits import (
    COST_LIMIT,
    EXPRESSION_LIMIT,
    OBJECT_LIMIT,
    Figures,
    PolicyTooLarge,
    estimated_cost,
    figures,
)
from webhook.offline.policy.manifests import (
    API_VERSION,
    POLICY_NAME,
    PRESETS_ANNOTATION,
    SHAPES_ANNOTATION,
    binding,
    policy_objects,
    split,
    with_bindings,
)
from webhook.offline.policy.shapes import (
    POSITIONS,
    Compiled,
    Shape,
    compile_shapes,
    containers_in,
    pattern_digest,
)

__all__ = [
    "API_VERSION",
    "COST_LIMIT",
    "EXPRESSION_LIMIT",
    "OBJECT_LIMIT",
    "POLICY_NAME",
    "POSITIONS",
    "PRESETS_ANNOTATION",
    "SHAPES_ANNOTATION",
    "Compiled",
    "Figures",
    "PolicyTooLarge",
    "Shape",
    "binding",
    "compile_shapes",
    "containers_in",
    "estimated_cost",
    "figures",
    "jsonpatch_map",
    "jsonpatch_message",
    "pattern_digest",
    "policy_objects",
    "policy_spec",
    "split",
    "with_bindings",
]
