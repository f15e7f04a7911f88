"""The certificate loop: the serving pair read again from disk every `every` seconds, so a
renewed pair (cert-manager, the bootstrap Deployment, the service CA) is served without a
restart, and a pair that cannot be read keeps the last good one, counted and logged by the
reloader."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from webhook.adapters.certs import CertificateReloader

log = logging.getLogger("multinode_webhook.certificates")


async def watch_certificates(
    tls: CertificateReloader, *, every: float, checked: Callable[[], None]
) -> None:
    """Check the pair every `every` seconds, then call `checked` (the metrics), until
    cancelled."""
    while True:
        await asyncio.sleep(every)
        try:
            tls.check()
            checked()
        except Exception:  # the loop must outlive any pass: the next one tries again
            log.exception("the certificate check failed; it runs again")
