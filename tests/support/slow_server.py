"""A webhook server in its own process whose reviews take 0.2 s, so that a test can send
SIGTERM while reviews are in flight: it prints its ports, then `reviewing` as each review
starts. Usage: python -m tests.support.slow_server CERT_DIR"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from webhook.adapters import certs
from webhook.adapters.config import Settings
from webhook.core.model import Decision
from webhook.core.mutate import decide
from webhook.transport.listeners import Listeners, bind, run
from webhook.transport.state import AppState


def slow_decide(facts: Any, **kwargs: Any) -> Decision:
    print("reviewing", flush=True)
    time.sleep(0.2)
    return decide(facts, **kwargs)


def main() -> None:
    cert_dir = Path(sys.argv[1])
    settings = Settings(cert_dir=cert_dir, log_level="info", log_format="json", deadline_seconds=5)
    state = AppState(settings, tls=certs.CertificateReloader(cert_dir), decide=slow_decide)
    https_socket = bind("127.0.0.1", 0, reuse_port=False)
    http_socket = bind("127.0.0.1", 0, reuse_port=False)
    print(https_socket.getsockname()[1], http_socket.getsockname()[1], flush=True)
    run(Listeners(state, https_socket, http_socket))


if __name__ == "__main__":
    main()
