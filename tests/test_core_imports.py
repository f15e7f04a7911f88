"""The pure core imports no web framework, server, Kubernetes client or settings library."""

from __future__ import annotations

import json
import subprocess
import sys

CORE = [
    "keys",
    "raw",
    "facts",
    "selection",
    "rewrite",
    "patch",
    "mutate",
    "admission",
    "documents",
    "preview",
    "migrate",
]
FORBIDDEN = ["fastapi", "starlette", "uvicorn", "kubernetes", "pydantic_settings", "pydantic"]


def test_core_pulls_in_no_adapter_or_transport() -> None:
    code = (
        "import json, sys\n"
        + "".join(f"import webhook.{module}\n" for module in CORE)
        + "print(json.dumps(sorted(m.split('.')[0] for m in sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(json.loads(done.stdout))
    assert "webhook" in loaded
    assert loaded.isdisjoint(FORBIDDEN), sorted(loaded & set(FORBIDDEN))
