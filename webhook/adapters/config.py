"""Every setting of `multinode-webhook serve`, in pydantic-settings classes.

Each field is also an environment variable (`MULTINODE_WEBHOOK_<FIELD>`) and a `serve` flag
(`--field-name`); a flag wins over the environment, the environment over the default. The
settings admission decides by (`DecisionSettings`) are also those of the offline front ends
(preview, migrate, check, policy), so that they decide as a server with the same flags does.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, SettingsConfigDict

from webhook.core import names
from webhook.core.model import DEFAULT_OPTIONS, Options
from webhook.core.names import Rule

KiB = 1024
MiB = 1024 * KiB


class DecisionSettings(BaseSettings):
    """What admission decides by: the targets, our namespace, the rules and the script limit;
    the defaults are the core's own."""

    model_config = SettingsConfigDict(env_prefix="MULTINODE_WEBHOOK_", frozen=True)

    containers: tuple[str, ...] = Field(
        DEFAULT_OPTIONS.containers,
        description="names of the containers of InferenceService pods that may be rewritten",
    )
    llm_containers: tuple[str, ...] = Field(
        DEFAULT_OPTIONS.llm_containers,
        description="names of the containers of LLMInferenceService pods that may be rewritten",
    )
    own_namespace: str = Field(
        DEFAULT_OPTIONS.own_namespace, description="the webhook's own namespace (never mutated)"
    )
    max_script_bytes: int = Field(
        DEFAULT_OPTIONS.max_script_bytes,
        gt=0,
        description="largest script rewritten; a larger one leaves its container unchanged "
        "(reason script-too-large) and is never cached",
    )
    rules: tuple[Rule, ...] = Field(
        tuple(sorted(DEFAULT_OPTIONS.rules, key=list(Rule).index)),
        description="the rewrite rules that are on; a rule left out makes none of its edits",
    )

    def options(self) -> Options:
        return Options(
            containers=self.containers,
            llm_containers=self.llm_containers,
            own_namespace=self.own_namespace,
            rules=frozenset(self.rules),
            max_script_bytes=self.max_script_bytes,
        )


class Settings(DecisionSettings):
    """The webhook server's configuration."""

    bind_address: str = Field("0.0.0.0", description="address every listener binds to")
    https_port: int = Field(
        names.HTTPS_PORT,
        ge=0,
        le=65535,
        description="HTTPS port of admission: /mutate, /mutate/shadow",
    )
    preview_port: int = Field(
        names.PREVIEW_PORT,
        ge=0,
        le=65535,
        description="HTTPS port of /preview, apart from admission; 0 turns /preview off",
    )
    http_port: int = Field(
        names.HTTP_PORT, ge=0, le=65535, description="plain HTTP port: /healthz, /readyz, /metrics"
    )
    cert_dir: Path | None = Field(
        None,
        description="directory with tls.crt and tls.key (reloaded when they change); "
        "unset: a self-signed CA and certificate are made under ./certs and reused (never "
        "over a pair serve did not make there)",
    )
    san: tuple[str, ...] = Field(
        (),
        description="extra subject alternative names (DNS names or IP addresses) for the "
        "self-signed certificate",
    )

    @field_validator("san")
    @classmethod
    def _san_names(cls, san: tuple[str, ...]) -> tuple[str, ...]:
        # Imported here: the offline front ends read DecisionSettings from this module and
        # start without cryptography.
        from webhook.adapters.certs import san_problem  # noqa: PLC0415

        for name in san:
            problem = san_problem(name)
            if problem is not None:
                # A PydanticCustomError's message is said as it is, without "Value error, ".
                raise PydanticCustomError("san", problem)
        return san

    cert_reload_seconds: float = Field(
        5.0, gt=0, description="how often to check the certificate files for changes"
    )
    body_limit: int = Field(
        4 * MiB, gt=0, description="largest admission request body in bytes (HTTP 413 above it)"
    )
    preview_body_limit: int = Field(
        4 * MiB, gt=0, description="largest /preview request body in bytes (HTTP 413 above it)"
    )
    on_error: Literal["allow", "deny"] = Field(
        "allow", description="answer to an internal error: allow the pod unchanged, or deny it"
    )
    deadline_seconds: float = Field(
        1.0, gt=0, description="internal budget of one review; over it counts as an error"
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field("info", description="log level")
    log_format: Literal["json", "text"] = Field("json", description="log line format")
    workers: int = Field(1, ge=1, le=64, description="server processes sharing the ports")
    drain_seconds: float = Field(
        10.0,
        ge=0,
        description="after SIGTERM, how long at most the server keeps answering, /readyz failing "
        "and every response closing its connection, until its clients have moved off",
    )
    shutdown_grace_seconds: int = Field(
        25, gt=0, description="after the drain, how long in-flight reviews have to finish"
    )
    read_seconds: float = Field(
        10.0,
        gt=0,
        description="deadline for a request's headers and body to arrive, on every port; "
        "a connection slower than that is closed",
    )
    # Longer than the API server's own idle timeout (Go's 90 s), so that the API server closes an
    # idle connection first: a server closing one races the review the API server may be
    # writing on it that moment, which it does not retry, and the pod is admitted unrepaired.
    keep_alive_seconds: int = Field(
        120, ge=1, description="how long an idle keep-alive connection stays open, in seconds"
    )
    max_connections: int = Field(
        1000,
        ge=1,
        description="open connections, or requests in flight, on one listener above which "
        "the connection that has waited longest on its client is dropped, or with none to "
        "drop requests are answered 503 and their connection closed",
    )
    # Two parses may run beside the server within the Deployment's 1 CPU and 256 MiB.
    parse_workers: int = Field(
        2,
        ge=1,
        le=16,
        description="sandbox processes parsing the scripts this server has not seen, for each "
        "server process (each costs about 45 MiB)",
    )
    # Generous against a linear analysis (a 64 KiB script made costly takes about 50 ms alone):
    # a stopped parse costs a new sandbox process, and a budget tight enough to trip under CPU
    # contention would spend more on those than it saves (bench/hardening.py flood).
    parse_budget_seconds: float = Field(
        0.9,
        gt=0,
        description="time one script's parse may take; past it the parse is stopped and the pod "
        "admitted unchanged (reason parse-timeout); must be under --deadline-seconds",
    )
    parse_queue: int = Field(
        64,
        ge=1,
        description="scripts waiting to be parsed, in all; a review whose script finds no room "
        "is answered at once by the error policy",
    )
    parse_queue_per_namespace: int = Field(
        8,
        ge=1,
        description="scripts of one namespace waiting to be parsed; namespaces take turns",
    )
    cache_bytes: int = Field(
        32 * MiB,
        ge=0,
        description="bytes the decision caches may hold; a pod larger than its share "
        "(this / 1024 entries) is decided every time instead",
    )

    @model_validator(mode="after")
    def _budget_under_deadline(self) -> Settings:
        if self.parse_budget_seconds >= self.deadline_seconds:
            raise ValueError(
                f"--parse-budget-seconds ({self.parse_budget_seconds:g}) must be under "
                f"--deadline-seconds ({self.deadline_seconds:g})"
            )
        return self

    warm_up: bool = Field(
        True,
        description="with cluster credentials (the pod's ServiceAccount, or KUBECONFIG), read and "
        "watch the cluster's ServingRuntimes, ClusterServingRuntimes and LLMInferenceService "
        "workloads, and parse their scripts before /readyz passes and as they change",
    )
    warm_up_seconds: float = Field(
        30.0,
        gt=0,
        description="how long /readyz waits for warm start at most",
    )

    events: bool = Field(
        True,
        description="with cluster credentials (the pod's ServiceAccount, or KUBECONFIG), tell "
        "the InferenceService or LLMInferenceService that owns a pod what its review did, in "
        "Kubernetes Events sent after admission",
    )

    def options(self) -> Options:
        return dataclasses.replace(super().options(), cache_bytes=self.cache_bytes)
