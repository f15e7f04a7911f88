"""A TLS handshake with the running webhook, made as the API server makes it: trusting only the
configuration's caBundle and expecting the Service's DNS name."""

from __future__ import annotations

import datetime as dt
import socket
import ssl
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Handshake:
    """What the handshake found: `verified` None when the address could not be reached, with
    the reason in `detail`; `expires` is the served certificate's notAfter when verified."""

    verified: bool | None
    detail: str = ""
    expires: dt.datetime | None = None


def handshake(
    address: tuple[str, int], *, server_name: str, ca_bundle: bytes, timeout: float = 3.0
) -> Handshake:
    """Connect to `address` and verify the served certificate against `ca_bundle`."""
    context = ssl.create_default_context(cadata=ca_bundle.decode())
    try:
        with (
            socket.create_connection(address, timeout=timeout) as raw,
            context.wrap_socket(raw, server_hostname=server_name) as tls,
        ):
            cert = tls.getpeercert() or {}
    except ssl.SSLCertVerificationError as error:
        return Handshake(verified=False, detail=str(error.verify_message))
    except OSError as error:
        return Handshake(verified=None, detail=str(error))
    expires = dt.datetime.strptime(str(cert.get("notAfter")), "%b %d %H:%M:%S %Y %Z")
    return Handshake(verified=True, expires=expires)
