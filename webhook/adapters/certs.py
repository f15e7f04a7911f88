"""TLS material: generating a CA and serving certificate, and serving it with hot reload.

Kubernetes updates a mounted Secret by swapping a `..data` symlink, so the reloader compares
digests of the files' contents, not mtimes. A new pair is first loaded into a scratch context;
only a pair that loads there is loaded into the live context, so a half-written or mismatched
pair never replaces the one being served.

It is long because a pair's whole life is one job: made, judged (whose it is, what it names,
when it ends), written and served as it changes, each step reading what the one before left.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import ipaddress
import logging
import re
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CERT_FILE: Final = "tls.crt"
KEY_FILE: Final = "tls.key"
CA_FILE: Final = "ca.crt"
DEFAULT_SANS: Final = ("localhost", "127.0.0.1")
PAIR_FILES: Final = (CERT_FILE, KEY_FILE, CA_FILE)
# Kubernetes names a Service with an RFC 1035 label and a namespace with an RFC 1123 one, and
# a host is named by RFC 1123 labels between dots; a certificate for any other name is one no
# client can ask for.
_SERVICE_NAME: Final = re.compile(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?")
_LABEL: Final = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_DNS_NAME_MOST: Final = 253

log = logging.getLogger("multinode_webhook.certs")


@dataclass(frozen=True, slots=True)
class Bundle:
    """A CA and a serving certificate it signed, PEM-encoded."""

    ca_pem: bytes
    cert_pem: bytes
    key_pem: bytes

    def ca_bundle(self) -> str:
        return ca_bundle(self.ca_pem)


def ca_bundle(ca_pem: bytes) -> str:
    """The base64 `caBundle` of a webhook configuration trusting these CAs."""
    return base64.b64encode(ca_pem).decode()


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


_CA_NAME: Final = _name("multinode-webhook CA")


def _san(names: tuple[str, ...]) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = []
    for name in names:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(entries)


def name_problem(service: str, namespace: str) -> str | None:
    """Why a Service and namespace cannot be named in a certificate, or None when they can."""
    if not _SERVICE_NAME.fullmatch(service):
        return (
            f"Service name {service!r} is not a DNS label (RFC 1035): at most 63 lowercase "
            "letters, digits and '-', starting with a letter and ending with a letter or digit"
        )
    if not _LABEL.fullmatch(namespace):
        return (
            f"namespace {namespace!r} is not a DNS label (RFC 1123): at most 63 lowercase "
            "letters, digits and '-', starting and ending with a letter or digit"
        )
    return None


def san_problem(name: str) -> str | None:
    """Why `name` cannot be a subject alternative name, or None when it can: a DNS name (RFC
    1123 labels, as `name_problem` asks of a namespace, between dots) or an IP address."""
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        if len(name) <= _DNS_NAME_MOST and all(_LABEL.fullmatch(p) for p in name.split(".")):
            return None
        return (
            f"{name!r} is neither an IP address nor a DNS name (RFC 1123): labels of at most 63 "
            "lowercase letters, digits and '-', each starting and ending with a letter or "
            f"digit, between dots, {_DNS_NAME_MOST} characters in all"
        )
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id:
        return f"{name!r} has a zone (%{address.scope_id}), which a certificate cannot name"
    return None


def pair_in(directory: Path) -> list[str]:
    """The files of a serving pair `directory` holds already: a server may be loading them."""
    return [name for name in PAIR_FILES if (directory / name).exists()]


def service_sans(service: str, namespace: str) -> tuple[str, ...]:
    """Every name a client may use for a Service, short to fully qualified."""
    return (
        service,
        f"{service}.{namespace}",
        f"{service}.{namespace}.svc",
        f"{service}.{namespace}.svc.cluster.local",
    )


def split_pem(bundle: bytes) -> list[x509.Certificate]:
    """The certificates of a PEM bundle, in order."""
    return x509.load_pem_x509_certificates(bundle) if bundle.strip() else []


def issued_by(cert_pem: bytes, ca_pems: bytes) -> bool:
    """Whether one of the CAs in `ca_pems` signed the certificate."""
    leaf = x509.load_pem_x509_certificate(cert_pem)
    for ca in split_pem(ca_pems):
        try:
            leaf.verify_directly_issued_by(ca)
        except (ValueError, TypeError, InvalidSignature):
            continue
        return True
    return False


def key_matches(cert_pem: bytes, key_pem: bytes) -> bool:
    """Whether the private key belongs to the certificate."""
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    cert_key = x509.load_pem_x509_certificate(cert_pem).public_key()
    private = serialization.load_pem_private_key(key_pem, password=None)
    return bool(
        cert_key.public_bytes(serialization.Encoding.DER, spki)
        == private.public_key().public_bytes(serialization.Encoding.DER, spki)
    )


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    """Signing only: a CA signs certificates, a serving certificate signs handshakes (ECDSA)."""
    return x509.KeyUsage(
        digital_signature=True,
        key_cert_sign=ca,
        crl_sign=ca,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        encipher_only=False,
        decipher_only=False,
    )


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    start: dt.datetime,
    end: dt.datetime,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
    )


def generate(*, sans: tuple[str, ...], days: int = 365, now: dt.datetime | None = None) -> Bundle:
    """A fresh CA (P-256) and a serving certificate for `sans`, valid for `days`."""
    if not sans:
        raise ValueError("a serving certificate needs at least one subject alternative name")
    start = (now or dt.datetime.now(dt.UTC)) - dt.timedelta(minutes=5)
    end = start + dt.timedelta(days=days, minutes=5)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        _builder(_CA_NAME, _CA_NAME, ca_key, start, end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        _builder(_name(sans[0]), _CA_NAME, key, start, end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(_san(sans), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return Bundle(
        ca_pem=ca.public_bytes(serialization.Encoding.PEM),
        cert_pem=cert.public_bytes(serialization.Encoding.PEM),
        key_pem=key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )


def write(bundle: Bundle, directory: Path) -> None:
    """`tls.crt`, `tls.key` (mode 0600) and `ca.crt` into `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    key = directory / KEY_FILE
    key.touch(mode=0o600, exist_ok=True)
    key.chmod(0o600)
    key.write_bytes(bundle.key_pem)
    (directory / CERT_FILE).write_bytes(bundle.cert_pem)
    (directory / CA_FILE).write_bytes(bundle.ca_pem)


def not_after(cert_pem: bytes) -> dt.datetime:
    return x509.load_pem_x509_certificate(cert_pem).not_valid_after_utc


def covers(cert_pem: bytes, sans: tuple[str, ...]) -> bool:
    """Whether the certificate names every one of `sans`."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    try:
        present = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    wanted = _san(sans)
    return all(name in present for name in wanted)


class ForeignPair(Exception):
    """The folder `serve` makes its pair in holds one it did not make; the message says what
    to do."""


def _made_for_localhost(cert_pem: bytes) -> bool:
    """Whether `serve` made this certificate: issued by a CA of ours and naming localhost, as
    neither a pair `certs generate` made for a Service nor one from another tool is."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    return cert.issuer == _CA_NAME and covers(cert_pem, DEFAULT_SANS)


def ensure_self_signed(directory: Path, *, sans: tuple[str, ...], days: int = 365) -> str | None:
    """Reuse the pair in `directory` when it is valid for a day more and names `sans`, else
    make a new CA and pair (the CA's key is never kept). None when reused, else why it made
    a new one. `ForeignPair` when the folder holds a pair it did not make for localhost (one
    `certs generate` made for a cluster, say), which it never replaces."""
    existing = pair_in(directory)
    if not existing:
        write(generate(sans=sans, days=days), directory)
        return "no certificate yet"
    try:
        pem = (directory / CERT_FILE).read_bytes()
        ours = _made_for_localhost(pem)
    except (OSError, ValueError):
        ours = False  # no certificate, or not one: whose the rest is, nothing tells
    if not ours:
        raise ForeignPair(
            f"{directory} holds {', '.join(existing)}, a pair serve did not make for localhost "
            "(such as one certs generate wrote for a cluster's Service), which it never "
            f"replaces: give --cert-dir {directory} to serve that pair, or move it out of "
            f"{directory} for serve to make its own"
        )
    if len(existing) < len(PAIR_FILES):
        reason = f"{', '.join(sorted(set(PAIR_FILES) - set(existing)))} missing"
    elif not_after(pem) - dt.datetime.now(dt.UTC) <= dt.timedelta(days=1):
        reason = "the certificate expires within a day"
    elif missing := [name for name in sans if not covers(pem, (name,))]:
        reason = f"the certificate does not name {', '.join(missing)}"
    else:
        return None
    write(generate(sans=sans, days=days), directory)
    return reason


def server_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["http/1.1"])
    return context


def _valid_now(cert_pem: bytes) -> None:
    """ValueError unless the certificate is valid at this moment."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    now = dt.datetime.now(dt.UTC)
    if now < cert.not_valid_before_utc:
        raise ValueError(f"not valid before {cert.not_valid_before_utc.isoformat()}")
    if now >= cert.not_valid_after_utc:
        raise ValueError(f"expired {cert.not_valid_after_utc.isoformat()}")


class CertificateReloader:
    """The live server context, reloaded in place when `tls.crt`/`tls.key` change.

    A changed pair replaces the one being served only when it parses, its key matches and it
    is valid now; otherwise the last good pair keeps serving, with an error log and a count
    in `reload_errors`. (The first pair is loaded even when expired: `/readyz` reports it.)
    A first pair that does not load is a ValueError saying why: there is no pair to keep.
    """

    def __init__(self, directory: Path) -> None:
        self.cert_file = directory / CERT_FILE
        self.key_file = directory / KEY_FILE
        self.context = server_context()
        self.expires: dt.datetime | None = None
        self.reload_errors = 0
        self._digest = b""
        self._rejected = b""
        if not self.check():
            raise ValueError(f"no valid certificate and key in {directory}")

    def _read(self) -> tuple[bytes, bytes, bytes]:
        cert, key = self.cert_file.read_bytes(), self.key_file.read_bytes()
        return cert, key, hashlib.sha256(cert + b"\0" + key).digest()

    def check(self) -> bool:
        """Load the files if they changed. True when the pair being served is a good one."""
        try:
            cert, key, digest = self._read()
        except OSError as error:
            return self._refused(f"unreadable ({error})")
        if digest in (self._digest, self._rejected):
            return self.expires is not None
        # The pair is checked and loaded from one snapshot of its bytes, so a file swapped
        # between the check and the load cannot reach the live context; the snapshot (a key
        # among it) is gone as soon as it is loaded.
        try:
            staging = tempfile.TemporaryDirectory(prefix="multinode-webhook-tls-")
        except OSError as error:
            return self._not_staged(error)
        with staging as stage:
            staged_cert, staged_key = Path(stage) / CERT_FILE, Path(stage) / KEY_FILE
            try:
                staged_key.touch(mode=0o600)
                staged_key.write_bytes(key)
                staged_cert.write_bytes(cert)
                server_context().load_cert_chain(staged_cert, staged_key)
                expires = not_after(cert)
                if self.expires is not None:
                    _valid_now(cert)
            except (ssl.SSLError, ValueError) as error:
                if not self._settled(digest):
                    # The two files were read across a swap of the Secret's `..data` link
                    # (one old, one new): not a bad pair, so the next check reads it whole.
                    log.debug("certificate files changed while read; reading them again")
                    return self.expires is not None
                self._rejected = digest
                self.reload_errors += 1
                return self._refused(f"rejected ({error})")
            except OSError as error:  # after SSLError, which is one
                # This replica's disk (a full /tmp, no file descriptors left), not the pair.
                return self._not_staged(error)
            self.context.load_cert_chain(staged_cert, staged_key)
        self._digest, self.expires = digest, expires
        log.info("serving certificate loaded, valid until %s", expires.isoformat())
        return True

    def _not_staged(self, error: OSError) -> bool:
        """The pair could not be staged here to be checked: counted and logged, never taken for
        a bad pair, so the next check tries it again."""
        self.reload_errors += 1
        return self._refused(f"not staged here ({error})")

    def _refused(self, why: str) -> bool:
        """A pair that did not load: the current one keeps serving, with an error log; with
        none yet (the first load), a ValueError saying why, the one line `serve` exits with."""
        if self.expires is None:
            raise ValueError(f"no valid certificate and key in {self.cert_file.parent}: pair {why}")
        log.error("new certificate pair %s; keeping the current pair", why)
        return True

    def _settled(self, digest: bytes) -> bool:
        """Whether the files still hold the pair that was read (`digest`)."""
        try:
            return self._read()[2] == digest
        except OSError:
            return False

    def valid(self, now: dt.datetime | None = None) -> bool:
        return self.expires is not None and (now or dt.datetime.now(dt.UTC)) < self.expires
