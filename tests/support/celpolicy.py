"""A MutatingAdmissionPolicy's CEL run outside the API server, with cel-python: its match
conditions, its variables (each when first used), and its JSON patch, as the API server
evaluates them (Kubernetes' `JSONPatch{…}` written as plain maps, `policy.jsonpatch_map`). The
functions of Kubernetes' CEL libraries that the policy calls and cel-python lacks (the regex
library's `findAll`, the strings library's `substring`, `indexOf` and `join`) are given as
Kubernetes defines them, on code points."""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any, Final

import celpy
import jsonpatch
from celpy.adapter import json_to_cel


def _python(value: Any) -> Any:
    if isinstance(value, celpy.celtypes.MapType):
        return {str(key): _python(item) for key, item in value.items()}
    if isinstance(value, celpy.celtypes.ListType):
        return [_python(item) for item in value]
    if isinstance(value, celpy.celtypes.BoolType):
        return bool(value)
    if isinstance(value, celpy.celtypes.IntType):
        return int(value)
    if isinstance(value, celpy.celtypes.StringType):
        return str(value)
    return value


def _find_all(text: Any, pattern: Any) -> celpy.celtypes.ListType:
    return celpy.celtypes.ListType(
        [celpy.celtypes.StringType(m.group(0)) for m in re.finditer(str(pattern), str(text))]
    )


def _substring(text: Any, start: Any, end: Any) -> celpy.celtypes.StringType:
    return celpy.celtypes.StringType(str(text)[int(start) : int(end)])


def _index_of(text: Any, part: Any, offset: Any = 0) -> celpy.celtypes.IntType:
    base, start = str(text), int(offset)
    if start < 0 or start > len(base):
        raise ValueError(f"indexOf offset {start} out of range")
    return celpy.celtypes.IntType(base.find(str(part), start))


def _join(items: Any, separator: Any = "") -> celpy.celtypes.StringType:
    return celpy.celtypes.StringType(str(separator).join(str(item) for item in items))


KUBERNETES_FUNCTIONS: Final[dict[str, Any]] = {
    "findAll": _find_all,
    "substring": _substring,
    "join": _join,
    "indexOf": _index_of,
}


# What an expression reads of the request being admitted, outside its string literals.
_READS: Final = re.compile(r"\b(?:object|request|variables)\b")
_STRINGS: Final = re.compile(r'"(?:[^"\\]|\\.)*"')


class _Variables(celpy.celtypes.MapType):
    """A policy's variables as the API server gives them to its expressions: each evaluated
    when it is first used, then kept."""

    def __init__(
        self, programs: dict[str, Any], activation: dict[str, Any], known: dict[str, Any]
    ) -> None:
        super().__init__({celpy.celtypes.StringType(k): v for k, v in known.items()})
        self._programs = programs
        self._activation = activation

    def __getitem__(self, key: Any) -> Any:
        name = celpy.celtypes.StringType(key)
        if not super().__contains__(name):
            super().__setitem__(name, self._programs[str(key)].evaluate(self._activation))
        return super().__getitem__(name)


class Policy:
    """A policy's spec, compiled once, applied to any number of pods."""

    def __init__(self, spec: Mapping[str, Any]) -> None:
        env = celpy.Environment()

        def program(expression: str) -> Any:
            return env.program(env.compile(expression), functions=KUBERNETES_FUNCTIONS)

        self.conditions = [program(c["expression"]) for c in spec["matchConditions"]]
        self.variables = {v["name"]: program(v["expression"]) for v in spec["variables"]}
        self.mutation = program(spec["mutations"][0]["jsonPatch"]["expression"])
        # A variable that reads nothing (the compiled scripts' lists) is the same for every
        # pod: evaluated once, where interpreting its literal again would cost most of a run.
        self.constants = {
            v["name"]: self.variables[v["name"]].evaluate({})
            for v in spec["variables"]
            if not _READS.search(_STRINGS.sub("", v["expression"]))
        }

    def patch(self, pod: Mapping[str, Any], *, namespace: str) -> list[dict[str, Any]]:
        """The JSON patch the policy makes of a pod created in `namespace` (none: no match)."""
        activation: dict[str, Any] = {
            "object": json_to_cel(copy.deepcopy(dict(pod))),
            "request": json_to_cel({"namespace": namespace}),
        }
        if not all(bool(condition.evaluate(activation)) for condition in self.conditions):
            return []
        activation["variables"] = _Variables(self.variables, activation, self.constants)
        ops: list[dict[str, Any]] = _python(self.mutation.evaluate(activation))
        return ops

    def apply(self, pod: Mapping[str, Any], *, namespace: str) -> dict[str, Any]:
        """The pod as the policy stores it."""
        ops = self.patch(pod, namespace=namespace)
        return jsonpatch.apply_patch(dict(pod), ops) if ops else dict(pod)
