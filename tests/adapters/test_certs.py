"""Certificate generation and the reloader's guard against bad pairs."""

from __future__ import annotations

import base64
import datetime as dt
import os
import re
import ssl
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from tests.support import servers
from tests.support.builders import REPO
from tests.support.cli import cli, one_line_error
from webhook.adapters import certs


def test_generated_chain_verifies_and_serves(tmp_path: Path) -> None:
    bundle = certs.generate(sans=("webhook.ns.svc", "127.0.0.1"), days=30)
    ca = x509.load_pem_x509_certificate(bundle.ca_pem)
    leaf = x509.load_pem_x509_certificate(bundle.cert_pem)
    leaf.verify_directly_issued_by(ca)
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["webhook.ns.svc"]
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    usage = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert leaf.extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature
    assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    lifetime = leaf.not_valid_after_utc - leaf.not_valid_before_utc
    assert dt.timedelta(days=30) <= lifetime <= dt.timedelta(days=30, minutes=10)
    certs.write(bundle, tmp_path)
    assert (tmp_path / certs.KEY_FILE).stat().st_mode & 0o777 == 0o600
    ssl.create_default_context().load_verify_locations(tmp_path / certs.CA_FILE)
    assert bundle.ca_bundle().startswith("LS0t")  # base64 of "-----BEGIN"


def test_self_signed_pair_is_reused_until_it_no_longer_fits(tmp_path: Path) -> None:
    assert certs.ensure_self_signed(tmp_path, sans=certs.DEFAULT_SANS) == "no certificate yet"
    first = (tmp_path / certs.CERT_FILE).read_bytes()
    assert certs.ensure_self_signed(tmp_path, sans=certs.DEFAULT_SANS) is None
    assert (tmp_path / certs.CERT_FILE).read_bytes() == first
    made = certs.ensure_self_signed(tmp_path, sans=(*certs.DEFAULT_SANS, "extra.example"))
    assert made == "the certificate does not name extra.example"
    assert certs.covers((tmp_path / certs.CERT_FILE).read_bytes(), ("extra.example",))


def _generated_for_a_cluster(folder: Path) -> None:
    certs.write(certs.generate(sans=certs.service_sans("hook", "ops")), folder)


def _garbage_certificate(folder: Path) -> None:
    certs.write(certs.generate(sans=certs.DEFAULT_SANS), folder)
    (folder / certs.CERT_FILE).write_text("garbage")


def _a_key_alone(folder: Path) -> None:
    folder.mkdir(exist_ok=True)
    (folder / certs.KEY_FILE).write_bytes(certs.generate(sans=("x",)).key_pem)


@pytest.mark.parametrize(
    "pair",
    [_generated_for_a_cluster, _garbage_certificate, _a_key_alone],
    ids=["certs-generate", "garbage", "key-alone"],
)
def test_a_pair_serve_did_not_make_is_never_replaced(
    tmp_path: Path, pair: Callable[[Path], None]
) -> None:
    pair(tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(certs.ForeignPair, match=f"give --cert-dir {tmp_path} to serve that pair"):
        certs.ensure_self_signed(tmp_path, sans=certs.DEFAULT_SANS)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_a_pair_serve_made_with_a_file_lost_is_made_again(tmp_path: Path) -> None:
    certs.ensure_self_signed(tmp_path, sans=certs.DEFAULT_SANS)
    (tmp_path / certs.KEY_FILE).unlink()
    assert certs.ensure_self_signed(tmp_path, sans=certs.DEFAULT_SANS) == "tls.key missing"
    cert = (tmp_path / certs.CERT_FILE).read_bytes()
    assert certs.key_matches(cert, (tmp_path / certs.KEY_FILE).read_bytes())


def test_serve_keeps_the_pair_certs_generate_wrote_in_its_folder(tmp_path: Path) -> None:
    # Run from a folder of its own, the package under test is found on PYTHONPATH, not
    # through the working directory.
    here = {"PYTHONPATH": str(REPO)}
    made = cli(
        "certs", "generate", "--service", "hook", "--namespace", "ops", cwd=tmp_path, env=here
    )
    assert made.returncode == 0, made.stderr
    before = {p.name: p.read_bytes() for p in (tmp_path / "certs").iterdir()}
    ports = ["--https-port=0", "--http-port=0", "--preview-port=0", "--no-warm-up", "--no-events"]
    # A serve that took the folder would still be serving: the timeout ends it.
    line = one_line_error(cli("serve", *ports, cwd=tmp_path, env=here, timeout=30))
    assert "a pair serve did not make for localhost" in line, line
    assert {p.name: p.read_bytes() for p in (tmp_path / "certs").iterdir()} == before


def test_reloader_refuses_to_start_without_a_good_pair(tmp_path: Path) -> None:
    bundle = certs.generate(sans=("localhost",))
    other = certs.generate(sans=("localhost",))
    certs.write(bundle, tmp_path)
    (tmp_path / certs.KEY_FILE).write_bytes(other.key_pem)  # key of another certificate
    with pytest.raises(ValueError, match="no valid certificate and key"):
        certs.CertificateReloader(tmp_path)


def _junk_pair(folder: Path) -> None:
    (folder / certs.CERT_FILE).write_text("junk")
    (folder / certs.KEY_FILE).write_text("junk")


def _no_key(folder: Path) -> None:
    (folder / certs.CERT_FILE).write_bytes(certs.generate(sans=("localhost",)).cert_pem)


@pytest.mark.parametrize(
    ("pair", "why"),
    [(_junk_pair, "pair rejected ([SSL]"), (_no_key, "pair unreadable ([Errno 2]")],
    ids=["junk", "no-key"],
)
def test_a_first_pair_that_does_not_load_is_one_line_saying_why(
    tmp_path: Path, pair: Callable[[Path], None], why: str, caplog: pytest.LogCaptureFixture
) -> None:
    # There is no current pair to keep: no log says one is kept, the error says why.
    pair(tmp_path)
    with pytest.raises(
        ValueError, match=re.escape(f"no valid certificate and key in {tmp_path}: {why}")
    ):
        certs.CertificateReloader(tmp_path)
    assert caplog.records == []
    flags = ["--https-port=0", "--http-port=0", "--preview-port=0", "--no-warm-up", "--no-events"]
    line = one_line_error(cli("serve", f"--cert-dir={tmp_path}", *flags, timeout=30))
    assert f"no valid certificate and key in {tmp_path}: {why}" in line, line


def test_reloader_leaves_no_copy_of_the_key_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    certs.write(certs.generate(sans=("localhost",)), tmp_path / "tls")
    certs.CertificateReloader(tmp_path / "tls")
    assert list(scratch.iterdir()) == []


def test_reloader_keeps_the_good_pair(tmp_path: Path) -> None:
    good = certs.generate(sans=("localhost",))
    certs.write(good, tmp_path)
    reloader = certs.CertificateReloader(tmp_path)
    expires = reloader.expires
    (tmp_path / certs.CERT_FILE).write_bytes(b"garbage")
    assert reloader.check() is True
    assert reloader.expires == expires
    newer = certs.generate(sans=("localhost",), days=90)
    certs.write(newer, tmp_path)
    assert reloader.check() is True
    assert reloader.expires != expires


def test_a_pair_that_cannot_be_staged_here_is_tried_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A full /tmp (or no file descriptor left) is this replica's trouble, not the pair's.
    certs.write(certs.generate(sans=("localhost",)), tmp_path)
    reloader = certs.CertificateReloader(tmp_path)
    expires = reloader.expires
    certs.write(certs.generate(sans=("localhost",), days=90), tmp_path)
    real = tempfile.TemporaryDirectory

    def full(*args: object, **kwargs: object) -> tempfile.TemporaryDirectory[str]:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(tempfile, "TemporaryDirectory", full)
    assert reloader.check() is True
    assert (reloader.expires, reloader.reload_errors) == (expires, 1)
    monkeypatch.setattr(tempfile, "TemporaryDirectory", real)
    assert reloader.check() is True
    assert reloader.expires != expires


def test_generate_command_writes_a_service_certificate(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "webhook",
            "certs",
            "generate",
            "--service",
            "hook",
            "--namespace",
            "ops",
            "--out",
            str(tmp_path),
            "--days",
            "90",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    ca_pem = (tmp_path / certs.CA_FILE).read_bytes()
    assert base64.b64decode(done.stdout.strip()) == ca_pem
    leaf = x509.load_pem_x509_certificate((tmp_path / certs.CERT_FILE).read_bytes())
    leaf.verify_directly_issued_by(x509.load_pem_x509_certificate(ca_pem))
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == [
        "hook",
        "hook.ops",
        "hook.ops.svc",
        "hook.ops.svc.cluster.local",
    ]
    assert list(leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.SERVER_AUTH
    ]
    days = (leaf.not_valid_after_utc - dt.datetime.now(dt.UTC)).days
    assert days in (89, 90)
    assert certs.key_matches(
        (tmp_path / certs.CERT_FILE).read_bytes(), (tmp_path / certs.KEY_FILE).read_bytes()
    )


def _mismatched() -> certs.Bundle:
    one, other = certs.generate(sans=("localhost",)), certs.generate(sans=("localhost",))
    return certs.Bundle(one.ca_pem, one.cert_pem, other.key_pem)


NOW = dt.datetime.now(dt.UTC)


@pytest.mark.parametrize(
    "bad",
    [
        certs.generate(sans=("localhost",), days=1, now=NOW - dt.timedelta(days=3)),
        certs.generate(sans=("localhost",), days=30, now=NOW + dt.timedelta(days=2)),
        _mismatched(),
    ],
    ids=["expired", "not-yet-valid", "mismatched-key"],
)
def test_a_reloaded_pair_that_is_not_valid_now_is_refused(
    tmp_path: Path, bad: certs.Bundle
) -> None:
    good = certs.generate(sans=("localhost",))
    certs.write(good, tmp_path)
    reloader = certs.CertificateReloader(tmp_path)
    expires = reloader.expires
    certs.write(bad, tmp_path)
    assert reloader.check() is True
    assert (reloader.expires, reloader.reload_errors) == (expires, 1)
    assert reloader.valid()
    assert reloader.check() is True  # the same refused pair is not counted again
    assert reloader.reload_errors == 1


@pytest.mark.parametrize("days", ["0", "-5"])
def test_generate_refuses_a_validity_under_one_day(tmp_path: Path, days: str) -> None:
    flags = ["--service", "s", "--namespace", "n", "--out", str(tmp_path / "out"), "--days", days]
    line = one_line_error(cli("certs", "generate", *flags))
    assert line == f"multinode-webhook: error: --days must be at least 1, got {days}"
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("service", "namespace", "refused"),
    [
        ("multinode-webhook", "ops", None),
        ("hook", "0ps", None),  # a namespace may start with a digit (RFC 1123)
        ("Bad Name!", "ops", "Service name 'Bad Name!'"),
        ("0hook", "ops", "Service name '0hook'"),  # a Service may not (RFC 1035)
        ("hook-", "ops", "Service name 'hook-'"),
        ("h" * 64, "ops", "Service name 'hhh"),
        ("hook", "team_a", "namespace 'team_a'"),
        ("hook", "", "namespace ''"),
    ],
)
def test_only_dns_labels_are_named_in_a_certificate(
    service: str, namespace: str, refused: str | None
) -> None:
    problem = certs.name_problem(service, namespace)
    assert problem is None if refused is None else (problem or "").startswith(refused)


@pytest.mark.parametrize(
    ("name", "named"),
    [
        ("webhook.example", True),
        ("host.docker.internal", True),
        ("127.0.0.1", True),
        ("::1", True),
        ("0ps", True),
        ("Bad Name!", False),
        ("Webhook.Example", False),
        ("a..b", False),
        ("webhook.", False),
        ("*.example", False),
        ("", False),
        (f"{'h' * 64}.example", False),
        (".".join(["h" * 63] * 4), False),  # 255 characters, past DNS's 253
    ],
)
def test_a_subject_alternative_name_is_a_dns_name_or_an_ip_address(name: str, named: bool) -> None:
    problem = certs.san_problem(name)
    assert problem is None if named else (problem or "").startswith(f"{name!r} is neither")


def test_generate_refuses_a_name_that_is_no_dns_label_in_one_line(tmp_path: Path) -> None:
    flags = ["--service", "Bad Name!", "--namespace", "n", "--out", str(tmp_path / "out")]
    line = one_line_error(cli("certs", "generate", *flags))
    assert line.startswith("multinode-webhook: error: Service name 'Bad Name!' is not a DNS label")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("present", certs.PAIR_FILES)
def test_generate_keeps_a_pair_in_use_unless_forced(tmp_path: Path, present: str) -> None:
    (tmp_path / present).write_text("a running server's\n")
    flags = ["--service", "hook", "--namespace", "ops", "--out", str(tmp_path)]
    for refused in (
        cli("certs", "generate", *flags),
        cli("certs", "generate", *flags, "--no-force"),
    ):
        line = one_line_error(refused)
        assert f"{tmp_path} holds {present} already" in line
        assert "--force" in line
        assert [p.name for p in tmp_path.iterdir()] == [present]
        assert (tmp_path / present).read_text() == "a running server's\n"
    forced = cli("certs", "generate", *flags, "--force")
    assert forced.returncode == 0, forced.stderr
    cert = (tmp_path / certs.CERT_FILE).read_bytes()
    assert certs.covers(cert, certs.service_sans("hook", "ops"))
    assert certs.key_matches(cert, (tmp_path / certs.KEY_FILE).read_bytes())


def test_a_pair_read_across_a_secret_update_is_not_counted_as_refused(tmp_path: Path) -> None:
    # The kubelet swaps both files with one rename of `..data`, but the reloader reads them
    # one after the other and can straddle it. To land the swap between the two reads every
    # time, the key of the pair being replaced is a FIFO: opening it for writing returns
    # once the reloader has read the certificate and opened the key; the swap happens then,
    # and the reloader reads the new pair's key.
    old, new = certs.generate(sans=("localhost",)), certs.generate(sans=("localhost",), days=30)
    root = servers.kube_style_cert_dir(tmp_path / "tls", certs.generate(sans=("localhost",)))
    reloader = certs.CertificateReloader(root)
    servers.swap_certificate(root, old)
    fifo = root / os.readlink(root / "..data") / certs.KEY_FILE
    fifo.unlink()
    os.mkfifo(fifo)

    def swap_mid_read() -> None:
        with fifo.open("wb") as key:
            servers.swap_certificate(root, new)
            key.write(new.key_pem)

    swapper = threading.Thread(target=swap_mid_read)
    swapper.start()
    assert reloader.check() is True
    swapper.join()
    assert reloader.reload_errors == 0
    assert reloader.check() is True
    assert (reloader.expires, reloader.reload_errors) == (certs.not_after(new.cert_pem), 0)


def test_serve_where_certs_is_a_file_says_so_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "certs").touch()
    done = cli("serve", "--https-port=0", cwd=tmp_path, env={"PYTHONPATH": str(REPO)})
    assert one_line_error(done) == (
        f"multinode-webhook: error: cannot keep a self-signed pair in {tmp_path / 'certs'}: "
        "File exists"
    )
