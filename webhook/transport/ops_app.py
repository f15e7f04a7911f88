"""The plain-HTTP operations listener's app: liveness, readiness and metrics."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response

from webhook.transport.http import json_errors
from webhook.transport.metrics import CONTENT_TYPE
from webhook.transport.state import AppState


def ops_app(state: AppState) -> FastAPI:
    """The plain-HTTP listener: liveness, readiness and metrics."""
    app = FastAPI(
        title="multinode-webhook operations", docs_url=None, redoc_url=None, openapi_url=None
    )
    json_errors(app, refused=state.refused)

    @app.get("/healthz")
    async def healthz() -> Response:
        return JSONResponse({"status": "ok"})

    @app.get("/readyz")
    async def readyz() -> Response:
        reason = state.unready()
        if reason is not None:
            return JSONResponse({"status": "not ready", "reason": reason}, 503)
        return JSONResponse({"status": "ready"})

    @app.get("/metrics")
    async def metrics() -> Response:
        state.certificate_metrics()
        state.metrics.ready(state.unready() is None)
        return Response(state.metrics.exposition(), media_type=CONTENT_TYPE)

    return app
