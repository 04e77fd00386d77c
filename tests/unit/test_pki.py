"""The internal CA (hopthu.pki): the CA, host certificates, revocation (the
CRL every certificate names, `revoke`), and the checks the settings check and
the infra suite run on certificates operators supply.

Every test works in its own tmp_path and runs offline. Chains are validated
with cryptography's own X.509 verifier (a real path validation for a DNS name
or an IP, as a TLS client does it) and, when the openssl command is on PATH,
once with `openssl verify -x509_strict` too.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import stat
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from hopthu import pki
from hopthu.pki import PkiError

NAMES = ["mail.lab.example", "mx1.lab.example"]
IPS = ["198.18.0.10"]
CRL_URL = "http://pki.lab.example/hopthu-ca.crl"
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)


@pytest.fixture
def ca(tmp_path: Path) -> pki.CA:
    return pki.create_ca(tmp_path / "ca", now=NOW)


@pytest.fixture
def host(ca: pki.CA, tmp_path: Path) -> pki.HostCert:
    return pki.ensure_host_cert(ca, tmp_path / "hosts", "mx1", NAMES, IPS, crl_url=CRL_URL,
                                now=NOW)


def load_cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def ext(cert: x509.Certificate, cls: type) -> x509.Extension:
    return cert.extensions.get_extension_for_class(cls)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def crl_urls(cert: x509.Certificate) -> list[str]:
    """The URIs of the certificate's CRL distribution points ([] without the extension)."""
    try:
        points = ext(cert, x509.CRLDistributionPoints).value
    except x509.ExtensionNotFound:
        return []
    return [name.value for point in points for name in point.full_name or []]


def tree(directory: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under `directory`, recursively, with its bytes and mtime."""
    return {
        str(p.relative_to(directory)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def snapshot(directory: Path) -> dict[str, tuple[bytes, int, int]]:
    """Every file's bytes, mtime and inode: proof that nothing was rewritten."""
    return {
        p.name: (p.read_bytes(), p.stat().st_mtime_ns, p.stat().st_ino)
        for p in sorted(directory.iterdir())
    }


def verify_for(ca: pki.CA, cert: x509.Certificate, subject: x509.verification.Subject) -> None:
    """Validate the chain as a TLS client would, for one name, at NOW."""
    verifier = PolicyBuilder().store(Store([ca.cert])).time(NOW).build_server_verifier(subject)
    verifier.verify(cert, [])


def write_pem_pair(
    directory: Path,
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
    *,
    san: list[str] | None,
) -> tuple[Path, Path]:
    """A self-signed certificate built by hand, for the shapes `issue` never
    makes (no SAN, weak key)."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "old.example.org")])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(datetime.now(UTC) - DAY)
        .not_valid_after(datetime.now(UTC) + 30 * DAY)
    )
    if san is not None:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in san]), critical=False
        )
    cert = builder.sign(key, hashes.SHA256())
    cert_path, key_path = directory / "supplied.crt", directory / "supplied.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


# -- The CA ------------------------------------------------------------------


def test_ca_is_a_self_signed_p256_root_that_can_only_sign_host_certificates(ca: pki.CA):
    cert = ca.cert
    assert isinstance(ca.key, ec.EllipticCurvePrivateKey)
    assert ca.key.curve.name == "secp256r1"
    assert cert.subject == cert.issuer
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "hopthu lab CA"
    cert.verify_directly_issued_by(cert)
    assert isinstance(cert.signature_hash_algorithm, hashes.SHA256)

    basic = ext(cert, x509.BasicConstraints)
    assert basic.critical, "basicConstraints must be critical in a CA (RFC 5280 §4.2.1.9)"
    assert basic.value.ca is True
    assert basic.value.path_length == 0, "the CA must not be able to make sub-CAs"

    usage = ext(cert, x509.KeyUsage)
    assert usage.critical
    assert usage.value.key_cert_sign and usage.value.crl_sign
    assert not usage.value.digital_signature and not usage.value.key_encipherment

    ski = ext(cert, x509.SubjectKeyIdentifier)
    assert ski.value == x509.SubjectKeyIdentifier.from_public_key(ca.key.public_key())


def test_ca_lives_ten_years_from_a_backdated_start(ca: pki.CA):
    assert ca.cert.not_valid_before_utc == NOW - pki.BACKDATE
    assert ca.cert.not_valid_after_utc == NOW + 3650 * DAY


def test_ca_key_is_0600_and_certificate_0644_in_a_private_directory(ca: pki.CA):
    assert mode(ca.key_path) == 0o600
    assert mode(ca.cert_path) == 0o644
    assert mode(ca.key_path.parent) == 0o700
    assert sorted(p.name for p in ca.key_path.parent.iterdir()) == ["ca.crt", "ca.key"], (
        "no temporary files left over"
    )


def test_load_or_create_ca_returns_the_existing_ca_without_writing(tmp_path: Path):
    first = pki.load_or_create_ca(tmp_path / "ca")
    before = snapshot(tmp_path / "ca")
    second = pki.load_or_create_ca(tmp_path / "ca", common_name="another name", key_type="rsa")
    assert snapshot(tmp_path / "ca") == before
    assert second.cert == first.cert
    assert second.cert_pem == first.cert_pem


def test_create_ca_refuses_to_overwrite_an_existing_ca(ca: pki.CA):
    key_before = ca.key_path.read_bytes()
    with pytest.raises(PkiError, match="refusing to overwrite"):
        pki.create_ca(ca.key_path.parent)
    assert ca.key_path.read_bytes() == key_before


@pytest.mark.parametrize("missing", ["ca.crt", "ca.key"])
def test_load_or_create_ca_writes_nothing_when_half_a_ca_is_there(ca: pki.CA, missing: str):
    directory = ca.key_path.parent
    (directory / missing).unlink()
    before = snapshot(directory)
    with pytest.raises(PkiError, match=f"{missing}.*(Restore|restore)") as err:
        pki.load_or_create_ca(directory)
    assert str(directory / missing) in str(err.value)
    assert snapshot(directory) == before, "the remaining file must stay untouched"


def test_load_or_create_ca_refuses_a_key_from_another_ca(ca: pki.CA, tmp_path: Path):
    other = pki.create_ca(tmp_path / "other")
    ca.key_path.write_bytes(other.key_path.read_bytes())
    with pytest.raises(PkiError, match="is not the private key of") as err:
        pki.load_or_create_ca(ca.key_path.parent)
    assert str(ca.key_path) in str(err.value) and str(ca.cert_path) in str(err.value)


def test_load_ca_refuses_a_host_certificate_as_ca(ca: pki.CA, host: pki.HostCert):
    with pytest.raises(PkiError, match="not a CA certificate"):
        pki.load_ca(host.cert_path, host.key_path, now=NOW)


def test_load_ca_refuses_an_expired_ca(tmp_path: Path):
    old = pki.create_ca(tmp_path / "ca", days=30, now=NOW - 60 * DAY)
    with pytest.raises(PkiError, match="expired on"):
        pki.load_or_create_ca(old.key_path.parent, now=NOW)


def test_ca_key_with_passphrase_needs_the_passphrase(tmp_path: Path):
    ca = pki.create_ca(tmp_path / "ca", passphrase=b"correct horse")
    assert b"ENCRYPTED PRIVATE KEY" in ca.key_path.read_bytes()
    with pytest.raises(PkiError, match="encrypted with a passphrase") as err:
        pki.load_or_create_ca(tmp_path / "ca")
    assert str(ca.key_path) in str(err.value)
    with pytest.raises(PkiError, match="does not decrypt"):
        pki.load_or_create_ca(tmp_path / "ca", passphrase=b"wrong")
    assert pki.load_or_create_ca(tmp_path / "ca", passphrase=b"correct horse").cert == ca.cert


def test_rsa_option_makes_an_rsa_3072_ca_and_host_key_for_old_clients(tmp_path: Path):
    # A client without ECDSA can check neither an ECDSA host key nor an ECDSA
    # CA's signature, so the RSA option is for the CA and the host alike.
    ca = pki.create_ca(tmp_path / "ca", key_type="rsa", now=NOW)
    assert isinstance(ca.key, rsa.RSAPrivateKey) and ca.key.key_size == 3072
    issued = pki.issue(ca, NAMES, key_type="rsa", now=NOW)
    key = serialization.load_pem_private_key(issued.key_pem, None)
    assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == 3072
    assert ext(issued.cert, x509.KeyUsage).value.key_encipherment, "TLS 1.2 RSA key transport"
    assert isinstance(issued.cert.signature_hash_algorithm, hashes.SHA256)
    verify_for(ca, issued.cert, x509.DNSName(NAMES[1]))


def test_unknown_key_type_is_refused(tmp_path: Path):
    with pytest.raises(PkiError, match="key_type must be 'ec'.*or 'rsa'"):
        pki.create_ca(tmp_path / "ca", key_type="ed25519")  # type: ignore[arg-type]


@pytest.mark.parametrize("common_name", ["", "x" * 65])
def test_ca_common_name_must_fit_in_a_cn(tmp_path: Path, common_name: str):
    with pytest.raises(PkiError, match="1 to 64 characters"):
        pki.create_ca(tmp_path / "ca", common_name=common_name)


def test_naive_datetimes_are_refused(tmp_path: Path):
    with pytest.raises(ValueError, match="timezone-aware"):
        pki.create_ca(tmp_path / "ca", now=datetime(2026, 1, 1))


# -- Host certificates -------------------------------------------------------


@pytest.mark.parametrize(
    "subject",
    [
        x509.DNSName("mail.lab.example"),
        x509.DNSName("mx1.lab.example"),
        x509.IPAddress(ipaddress.ip_address("198.18.0.10")),
    ],
    ids=str,
)
def test_host_certificate_validates_to_the_ca_for_each_of_its_names(
    ca: pki.CA, host: pki.HostCert, subject
):
    verify_for(ca, load_cert(host.cert_path), subject)


def test_host_certificate_does_not_validate_for_a_name_it_lacks(ca: pki.CA, host: pki.HostCert):
    with pytest.raises(VerificationError):
        verify_for(ca, load_cert(host.cert_path), x509.DNSName("other.lab.example"))


def test_host_certificate_does_not_validate_to_another_ca(host: pki.HostCert, tmp_path: Path):
    other = pki.create_ca(tmp_path / "other", now=NOW)
    with pytest.raises(VerificationError):
        verify_for(other, load_cert(host.cert_path), x509.DNSName(NAMES[0]))


def test_host_certificate_has_the_server_profile(ca: pki.CA):
    cert = pki.issue(ca, NAMES, IPS, now=NOW).cert

    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == NAMES[0]
    assert cert.issuer == ca.cert.subject
    san = ext(cert, x509.SubjectAlternativeName)
    assert not san.critical, "with a CN in the subject, the SAN is not critical"
    assert san.value.get_values_for_type(x509.DNSName) == NAMES
    assert san.value.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address(IPS[0])]

    basic = ext(cert, x509.BasicConstraints)
    assert basic.critical and basic.value.ca is False
    usage = ext(cert, x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature
    assert not usage.value.key_encipherment, "ECDSA keys never encipher (RFC 8813)"
    assert not usage.value.key_cert_sign
    assert list(ext(cert, x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.SERVER_AUTH,
        ExtendedKeyUsageOID.CLIENT_AUTH,
    ]
    aki = ext(cert, x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == ext(ca.cert, x509.SubjectKeyIdentifier).value.digest
    assert ext(cert, x509.SubjectKeyIdentifier).value == (
        x509.SubjectKeyIdentifier.from_public_key(cert.public_key())
    )


def test_host_certificate_has_a_random_159_bit_serial(ca: pki.CA):
    serials = {pki.issue(ca, NAMES, now=NOW).cert.serial_number for _ in range(5)}
    assert len(serials) == 5
    assert all(0 < s < 2**159 for s in serials)


def test_host_certificate_lives_397_days_from_a_backdated_start(ca: pki.CA):
    cert = pki.issue(ca, NAMES, now=NOW).cert
    assert cert.not_valid_before_utc == NOW - pki.BACKDATE
    assert cert.not_valid_after_utc == NOW + 397 * DAY


def test_host_certificate_never_outlives_the_ca(tmp_path: Path):
    ca = pki.create_ca(tmp_path / "ca", days=100, now=NOW)
    cert = pki.issue(ca, NAMES, now=NOW).cert
    assert cert.not_valid_after_utc == ca.cert.not_valid_after_utc


def test_fullchain_is_the_certificate_then_the_ca(ca: pki.CA):
    issued = pki.issue(ca, NAMES, now=NOW)
    assert issued.chain_pem == ca.cert_path.read_bytes()
    chain = x509.load_pem_x509_certificates(issued.fullchain_pem)
    assert chain == [issued.cert, ca.cert]
    assert b"ENCRYPTED" not in issued.key_pem and b"BEGIN PRIVATE KEY" in issued.key_pem


def test_names_are_normalised_and_vietnamese_idn_becomes_an_a_label(ca: pki.CA):
    cert = pki.issue(ca, ["Mail.Lab.Example.", "thư.bộtưpháp.vn", "mail.lab.example"], now=NOW).cert
    dns = ext(cert, x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    assert dns == ["mail.lab.example", "xn--th-e0a.xn--btphp-0qa06li33k.vn"]
    assert dns[1].encode().decode("idna") == "thư.bộtưpháp.vn"


def test_a_first_name_too_long_for_the_cn_gives_an_empty_subject_and_critical_san(ca: pki.CA):
    long_name = ".".join(["a" * 30] * 3) + ".example"
    cert = pki.issue(ca, [long_name], now=NOW).cert
    assert len(cert.subject) == 0
    assert ext(cert, x509.SubjectAlternativeName).critical
    verify_for(ca, cert, x509.DNSName(long_name))


@pytest.mark.parametrize(
    ("names", "ips", "message"),
    [
        ([], [], "at least one DNS name"),
        ("mail.lab.example", [], "must be a list"),
        (["bad_name.example"], [], "not a valid host name"),
        (["-mail.example"], [], "not a valid host name"),
        (["*.org"], [], "not a valid host name"),
        (["mail.*.example.org"], [], "not a valid host name"),
        (NAMES, ["198.18.0.300"], "not an IP address"),
    ],
)
def test_issue_refuses_bad_names_with_the_allowed_form(ca: pki.CA, names, ips, message):
    with pytest.raises(PkiError, match=message):
        pki.issue(ca, names, ips, now=NOW)


def test_issue_refuses_a_validity_of_zero_days(ca: pki.CA):
    with pytest.raises(PkiError, match="at least 1"):
        pki.issue(ca, NAMES, days=0)


def test_written_key_is_0600_even_under_a_permissive_umask(ca: pki.CA, tmp_path: Path):
    old = os.umask(0)
    try:
        paths = pki.write_issued(pki.issue(ca, NAMES, now=NOW), tmp_path / "out", "mx1")
    finally:
        os.umask(old)
    assert mode(paths.key_path) == 0o600
    assert mode(paths.cert_path) == 0o644
    assert mode(paths.fullchain_path) == 0o644
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "mx1.crt",
        "mx1.fullchain.pem",
        "mx1.key",
    ], "no temporary files left over"


@pytest.mark.parametrize("name", ["../mx1", "", ".hidden", "a/b"])
def test_host_file_names_cannot_escape_the_directory(ca: pki.CA, tmp_path: Path, name: str):
    with pytest.raises(PkiError, match="cannot name certificate files"):
        pki.ensure_host_cert(ca, tmp_path / "hosts", name, NAMES)


# -- ensure_host_cert: issue only when needed --------------------------------


def test_first_ensure_issues_a_certificate(host: pki.HostCert):
    assert host.changed
    assert host.reason == "issued: no certificate yet"


def test_second_ensure_writes_no_new_bytes(ca: pki.CA, host: pki.HostCert, tmp_path: Path):
    before = snapshot(tmp_path / "hosts")
    again = pki.ensure_host_cert(ca, tmp_path / "hosts", "mx1", NAMES, IPS, crl_url=CRL_URL,
                                 now=NOW + 300 * DAY)
    assert not again.changed, again.reason
    assert again.reason == "up to date"
    assert snapshot(tmp_path / "hosts") == before


def test_ensure_with_the_same_names_in_another_spelling_changes_nothing(
    ca: pki.CA, host: pki.HostCert, tmp_path: Path
):
    before = snapshot(tmp_path / "hosts")
    same = ["MAIL.lab.example.", "mx1.lab.example", "mx1.lab.example"]
    again = pki.ensure_host_cert(ca, tmp_path / "hosts", "mx1", same, IPS, crl_url=CRL_URL,
                                 now=NOW)
    assert not again.changed, again.reason
    assert snapshot(tmp_path / "hosts") == before


def _break_with_other_ca(ca, host, tmp_path):
    other = pki.create_ca(tmp_path / "other", now=NOW)
    pki.write_issued(pki.issue(other, NAMES, IPS, now=NOW), host.cert_path.parent, "mx1")


def _break_with_mismatched_key(ca, host, tmp_path):
    host.key_path.write_bytes(pki.issue(ca, NAMES, IPS, now=NOW).key_pem)


def _break_with_no_crl(ca, host, tmp_path):
    """A certificate from before the CA named its CRL."""
    pki.write_issued(pki.issue(ca, NAMES, IPS, now=NOW), host.cert_path.parent, "mx1")


def _break_by_revoking(ca, host, tmp_path):
    pki.revoke(ca, load_cert(host.cert_path).serial_number, "key_compromise", now=NOW)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"names": [*NAMES, "imap.lab.example"]}, "added imap.lab.example"),
        ({"names": NAMES[:1]}, "removed mx1.lab.example"),
        ({"names": NAMES[::-1]}, "new order"),
        ({"ips": ["198.18.0.11"]}, "added 198.18.0.11; removed 198.18.0.10"),
        ({"ips": []}, "removed 198.18.0.10"),
        ({"now": NOW + 368 * DAY}, "expires in 29 days"),
        ({"now": NOW + 400 * DAY}, "mx1.crt expired on 2027-04-02"),
        ({"key_type": "rsa"}, "key type changed from ec to rsa"),
        ({"breaker": _break_with_other_ca}, "not issued by the CA"),
        ({"breaker": _break_with_mismatched_key}, "mx1.key does not match mx1.crt"),
        ({"breaker": lambda ca, h, t: h.key_path.unlink()}, "mx1.key is missing"),
        ({"breaker": lambda ca, h, t: h.cert_path.write_text("junk")}, "cannot be read"),
        (
            {"crl_url": "http://crl.lab.example/ca.crl"},
            f"CRL distribution point changed from {CRL_URL} to http://crl.lab.example/ca.crl",
        ),
        (
            {"breaker": _break_with_no_crl},
            f"mx1.crt names no CRL distribution point; it must name {CRL_URL}",
        ),
        ({"crl_url": None}, f"mx1.crt names the CRL {CRL_URL}, but no CRL URL is set"),
        ({"breaker": _break_by_revoking}, "was revoked on 2026-03-01 12:00 UTC (key_compromise)"),
    ],
    ids=[
        "name-added",
        "name-removed",
        "names-reordered",
        "ip-changed",
        "ip-removed",
        "29-days-left",
        "expired",
        "key-type",
        "other-ca",
        "key-mismatch",
        "key-missing",
        "cert-garbage",
        "crl-url-changed",
        "crl-missing",
        "crl-not-wanted",
        "revoked",
    ],
)
def test_ensure_issues_again_when(ca: pki.CA, host: pki.HostCert, tmp_path: Path, change, reason):
    names, ips = change.get("names", NAMES), change.get("ips", IPS)
    now = change.get("now", NOW)
    if "breaker" in change:
        change["breaker"](ca, host, tmp_path)
    old_cert = host.cert_path.read_bytes()

    result = pki.ensure_host_cert(
        ca,
        tmp_path / "hosts",
        "mx1",
        names,
        ips,
        key_type=change.get("key_type", "ec"),
        crl_url=change.get("crl_url", CRL_URL),
        now=now,
    )

    assert result.changed
    assert reason in result.reason
    cert = load_cert(result.cert_path)
    assert cert.public_bytes(serialization.Encoding.PEM) != old_cert
    cert.verify_directly_issued_by(ca.cert)
    pki.check_pair(result.cert_path, result.key_path, now=now)
    assert result.fullchain_path.read_bytes() == result.cert_path.read_bytes() + ca.cert_pem
    assert mode(result.key_path) == 0o600
    wanted = change.get("crl_url", CRL_URL)
    assert crl_urls(cert) == ([wanted] if wanted else [])


def test_ensure_keeps_a_certificate_with_31_days_left(
    ca: pki.CA, host: pki.HostCert, tmp_path: Path
):
    before = snapshot(tmp_path / "hosts")
    result = pki.ensure_host_cert(ca, tmp_path / "hosts", "mx1", NAMES, IPS, crl_url=CRL_URL,
                                  now=NOW + 366 * DAY)
    assert not result.changed, result.reason
    assert snapshot(tmp_path / "hosts") == before


def test_ensure_repairs_the_key_mode_without_a_new_key(
    ca: pki.CA, host: pki.HostCert, tmp_path: Path
):
    key_before = host.key_path.read_bytes()
    host.key_path.chmod(0o644)
    result = pki.ensure_host_cert(ca, tmp_path / "hosts", "mx1", NAMES, IPS, crl_url=CRL_URL,
                                  now=NOW)
    assert result.changed and "mode from 0644 to 0600" in result.reason
    assert mode(host.key_path) == 0o600
    assert host.key_path.read_bytes() == key_before


def test_ensure_rewrites_a_stale_fullchain_without_a_new_key(
    ca: pki.CA, host: pki.HostCert, tmp_path: Path
):
    key_before, cert_before = host.key_path.read_bytes(), host.cert_path.read_bytes()
    host.fullchain_path.unlink()
    result = pki.ensure_host_cert(ca, tmp_path / "hosts", "mx1", NAMES, IPS, crl_url=CRL_URL,
                                  now=NOW)
    assert result.changed and "rewrote mx1.fullchain.pem" in result.reason
    assert host.fullchain_path.read_bytes() == cert_before + ca.cert_pem
    assert (host.key_path.read_bytes(), host.cert_path.read_bytes()) == (key_before, cert_before)


# -- Revocation: the CRL every certificate names -----------------------------


def test_host_certificate_names_the_crl_as_its_distribution_point(
    ca: pki.CA, host: pki.HostCert
):
    for cert in (pki.issue(ca, NAMES, crl_url=CRL_URL, now=NOW).cert, load_cert(host.cert_path)):
        points = ext(cert, x509.CRLDistributionPoints)
        assert not points.critical, "a client that cannot fetch CRLs must still accept it"
        (point,) = points.value
        assert point.full_name == [x509.UniformResourceIdentifier(CRL_URL)]
        assert (point.relative_name, point.reasons, point.crl_issuer) == (None, None, None)


def test_a_certificate_issued_without_a_crl_url_names_no_crl(ca: pki.CA):
    assert crl_urls(pki.issue(ca, NAMES, now=NOW).cert) == []


def test_ensure_keeps_a_certificate_that_names_the_right_crl(
    ca: pki.CA, host: pki.HostCert, tmp_path: Path
):
    before = tree(tmp_path)
    again = pki.ensure_host_cert(ca, tmp_path / "hosts", "mx1", NAMES, IPS, crl_url=CRL_URL,
                                 now=NOW + DAY)
    assert (again.changed, again.reason) == (False, "up to date")
    assert tree(tmp_path) == before, "a second run must write nothing, in hosts/ or the CA's dir"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("https://pki.lab.example/hopthu-ca.crl", "must be fetchable without TLS"),
        ("ftp://pki.lab.example/hopthu-ca.crl", "has the scheme 'ftp'"),
        ("pki.lab.example/hopthu-ca.crl", "has no scheme"),
        ("http://pki.lab.example", "names no file"),
        ("http://user:pw@pki.lab.example/ca.crl", "user name or password"),
        ("http://pki.bộtưpháp.vn/ca.crl", "is not ASCII"),
    ],
    ids=["https", "ftp", "no-scheme", "no-file", "credentials", "idn"],
)
def test_issue_refuses_a_crl_url_that_is_not_plain_http(ca: pki.CA, url: str, message: str):
    with pytest.raises(PkiError, match=message):
        pki.issue(ca, NAMES, crl_url=url, now=NOW)


def test_crl_is_der_signed_by_the_ca_with_number_and_authority_key_id(ca: pki.CA):
    result = pki.refresh_crl(ca, now=NOW)
    assert (result.changed, result.reason) == (True, "no CRL yet")
    assert result.path == ca.cert_path.parent / "ca.crl"
    assert mode(result.path) == 0o644
    crl = x509.load_der_x509_crl(result.path.read_bytes())
    assert crl.is_signature_valid(ca.cert.public_key())
    assert crl.issuer == ca.cert.subject
    assert isinstance(crl.signature_hash_algorithm, hashes.SHA256)
    assert crl.last_update_utc == NOW - pki.BACKDATE
    assert crl.next_update_utc == NOW + 30 * DAY == result.next_update
    assert ext(crl, x509.CRLNumber).value.crl_number == int(NOW.timestamp()) == result.number
    aki = ext(crl, x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == ext(ca.cert, x509.SubjectKeyIdentifier).value.digest
    assert len(crl) == 0


def test_crl_from_another_ca_does_not_verify(ca: pki.CA, tmp_path: Path):
    other = pki.create_ca(tmp_path / "other", now=NOW)
    crl = pki.load_crl(pki.refresh_crl(ca, now=NOW).path)
    assert not crl.is_signature_valid(other.cert.public_key())


@pytest.mark.parametrize(
    ("later", "reason"),
    [
        (DAY, None),
        (20 * DAY, None),
        (20 * DAY + timedelta(seconds=1), "ca.crl's next update is in 9 days"),
        (30 * DAY, "ca.crl expired on 2026-03-31 12:00 UTC"),
    ],
    ids=["1-day", "20-days", "just-under-10-days-left", "expired"],
)
def test_crl_is_signed_again_only_when_under_10_days_of_validity_remain(
    ca: pki.CA, later: timedelta, reason: str | None
):
    first = pki.refresh_crl(ca, now=NOW)
    before = tree(ca.directory)
    again = pki.refresh_crl(ca, now=NOW + later)
    if reason is None:
        assert (again.changed, again.reason) == (False, "up to date")
        assert tree(ca.directory) == before, "a CRL within its window must not be rewritten"
    else:
        assert (again.changed, again.reason) == (True, reason)
        assert again.next_update == NOW + later + 30 * DAY
        assert again.number > first.number
        assert pki.load_crl(again.path).is_signature_valid(ca.cert.public_key())


def test_crl_number_grows_even_when_the_crl_is_signed_twice_in_a_second(
    ca: pki.CA, host: pki.HostCert
):
    first = pki.refresh_crl(ca, now=NOW)
    revoked = pki.revoke(ca, load_cert(host.cert_path).serial_number, "superseded", now=NOW)
    assert revoked.crl.number == first.number + 1


def test_crl_signed_by_another_ca_is_replaced(ca: pki.CA, tmp_path: Path):
    other = pki.create_ca(tmp_path / "other", now=NOW)
    stray = pki.refresh_crl(other, now=NOW).path
    (ca.directory / "ca.crl").write_bytes(stray.read_bytes())
    result = pki.refresh_crl(ca, now=NOW)
    assert result.changed and "was not signed by the CA" in result.reason
    assert pki.load_crl(result.path).is_signature_valid(ca.cert.public_key())


def test_revoke_puts_the_serial_on_the_signed_crl_with_its_reason(
    ca: pki.CA, host: pki.HostCert
):
    cert = load_cert(host.cert_path)
    done = pki.revoke(ca, pki.serial_hex(cert.serial_number), "key_compromise", now=NOW)

    assert done.changed and done.cert == cert
    crl = pki.load_crl(ca.directory / "ca.crl")
    assert crl.is_signature_valid(ca.cert.public_key())
    entry = crl.get_revoked_certificate_by_serial_number(cert.serial_number)
    assert entry is not None, "the revoked serial is missing from the CRL"
    assert entry.revocation_date_utc == NOW
    assert ext(entry, x509.CRLReason).value.reason == x509.ReasonFlags.key_compromise
    assert [r.serial_number for r in crl] == [cert.serial_number]
    lines = (ca.directory / "revoked.txt").read_text().splitlines()
    assert lines[-1] == (
        f"{pki.serial_hex(cert.serial_number)} 2026-03-01T12:00:00Z key_compromise"
        "  # mail.lab.example, mx1.lab.example, 198.18.0.10"
    )
    assert pki.read_revoked(ca) == [done.entry]


def test_revoke_keeps_what_the_operator_wrote_in_the_revoked_list(
    ca: pki.CA, host: pki.HostCert, tmp_path: Path
):
    first = load_cert(host.cert_path)
    pki.ensure_host_cert(ca, tmp_path / "hosts", "mx1", NAMES[:1], IPS, crl_url=CRL_URL, now=NOW)
    pki.revoke(ca, first.serial_number, "superseded", now=NOW)
    path = ca.directory / "revoked.txt"
    path.write_text(path.read_text() + "# 2026-03-01: mx1 replaced, ticket 4711\n")
    pki.revoke(ca, load_cert(host.cert_path).serial_number, "key_compromise", now=NOW)
    lines = path.read_text().splitlines()
    assert lines[-2] == "# 2026-03-01: mx1 replaced, ticket 4711"
    assert [e.reason.name for e in pki.read_revoked(ca)] == ["superseded", "key_compromise"]


def test_revoke_without_a_reason_puts_no_reason_code_on_the_crl(ca: pki.CA, host: pki.HostCert):
    serial = load_cert(host.cert_path).serial_number
    pki.revoke(ca, serial, "unspecified", now=NOW)
    entry = pki.load_crl(ca.directory / "ca.crl").get_revoked_certificate_by_serial_number(serial)
    assert entry is not None
    with pytest.raises(x509.ExtensionNotFound):
        ext(entry, x509.CRLReason)
    assert pki.refresh_crl(ca, now=NOW).changed is False, "the CRL must match revoked.txt"


def test_revoking_twice_changes_nothing(ca: pki.CA, host: pki.HostCert):
    serial = load_cert(host.cert_path).serial_number
    first = pki.revoke(ca, serial, "key_compromise", now=NOW)
    before = tree(ca.directory)
    again = pki.revoke(ca, serial, "superseded", now=NOW + DAY)
    assert not again.changed
    assert again.entry == first.entry
    assert tree(ca.directory) == before


@pytest.mark.parametrize(
    ("serial", "reason", "message"),
    [
        ("0BADC0FFEE", "key_compromise", "serial 0BADC0FFEE is not a certificate this CA issued"),
        ("not-hex", "key_compromise", "is not a certificate serial number"),
        ("", "key_compromise", "is not a certificate serial number"),
        ("00", "key_compromise", "is not a certificate serial number"),
        ("AB" * 21, "key_compromise", "is not a certificate serial number"),
        (None, "certificate_hold", "'certificate_hold' is not a revocation reason"),
    ],
    ids=["unknown", "not-hex", "empty", "zero", "over-20-octets", "hold"],
)
def test_revoke_refuses_bad_input_and_writes_nothing(
    ca: pki.CA, host: pki.HostCert, serial: str | None, reason: str, message: str
):
    pki.refresh_crl(ca, now=NOW)
    before = tree(ca.directory)
    if serial is None:
        serial = pki.serial_hex(load_cert(host.cert_path).serial_number)
    with pytest.raises(PkiError, match=message):
        pki.revoke(ca, serial, reason, now=NOW)
    assert tree(ca.directory) == before


def test_a_certificate_of_another_ca_cannot_be_revoked(ca: pki.CA, tmp_path: Path):
    other = pki.create_ca(tmp_path / "other", now=NOW)
    stranger = pki.ensure_host_cert(other, tmp_path / "strangers", "mx1", NAMES, now=NOW)
    serial = load_cert(stranger.cert_path).serial_number
    with pytest.raises(PkiError, match="is not a certificate this CA issued"):
        pki.revoke(ca, serial, "key_compromise", now=NOW)


def test_a_replaced_certificate_can_still_be_revoked(
    ca: pki.CA, host: pki.HostCert, tmp_path: Path
):
    old = load_cert(host.cert_path)
    pki.ensure_host_cert(ca, tmp_path / "hosts", "mx1", NAMES[:1], IPS, crl_url=CRL_URL, now=NOW)
    assert load_cert(host.cert_path) != old
    done = pki.revoke(ca, old.serial_number, "superseded", now=NOW)
    assert done.changed and done.cert == old
    assert {p.name for p in (ca.directory / "issued").iterdir()} == {
        f"{pki.serial_hex(c.serial_number)}.crt" for c in (old, load_cert(host.cert_path))
    }


@pytest.mark.parametrize(
    "text", ["0A1B2C", "0a1b2c", "0A:1B:2C", "serial=0A1B2C", "0x0a1b2c", " A1B2C "]
)
def test_serials_are_read_as_openssl_prints_them(text: str):
    assert pki.parse_serial(text) == 0x0A1B2C
    assert pki.serial_hex(0x0A1B2C) == "0A1B2C"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("0A1B2C 2026-03-01T12:00:00Z", "is not a revoked entry"),
        ("0A1B2C 2026-03-01 key_compromise", "is not a UTC time"),
        ("0A1B2C 2026-03-01T12:00:00Z on_a_whim", "is not a revocation reason"),
        ("XYZ 2026-03-01T12:00:00Z superseded", "is not a certificate serial number"),
    ],
)
def test_a_bad_line_in_the_revoked_list_is_named(ca: pki.CA, line: str, message: str):
    path = ca.directory / "revoked.txt"
    path.write_text(f"# a comment\n\n{line}  # mx1\n")
    with pytest.raises(PkiError, match=f"{path}:3: .*{message}"):
        pki.read_revoked(ca)
    with pytest.raises(PkiError, match=message):
        pki.refresh_crl(ca, now=NOW)
    assert not (ca.directory / "ca.crl").exists()


# -- An intermediate CA (the ministry's own CA may be one) -------------------


def make_intermediate(root: pki.CA, directory: Path) -> pki.CA:
    """An intermediate CA under `root`, filed as the ministry would give it:
    its certificate, then the root's, in one file."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Ministry issuing CA")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(root.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - DAY)
        .not_valid_after(NOW + 1000 * DAY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(root.key, hashes.SHA256())
    )
    directory.mkdir()
    cert_path, key_path = directory / "issuing.crt", directory / "issuing.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM) + root.cert_pem)
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return pki.load_ca(cert_path, key_path, now=NOW)


def test_an_intermediate_ca_issues_with_its_chain_in_the_fullchain(ca: pki.CA, tmp_path: Path):
    inter = make_intermediate(ca, tmp_path / "ministry")
    assert inter.chain == (ca.cert,)
    host = pki.ensure_host_cert(inter, tmp_path / "hosts", "mx1", NAMES, now=NOW)
    chain = x509.load_pem_x509_certificates(host.fullchain_path.read_bytes())
    assert chain[1:] == [inter.cert, ca.cert]
    pki.check_chain(host.fullchain_path, ca.cert_path)
    pki.check_chain(host.cert_path, inter.cert_path)


def test_check_chain_asks_for_the_intermediate_when_only_the_leaf_is_given(
    ca: pki.CA, tmp_path: Path
):
    inter = make_intermediate(ca, tmp_path / "ministry")
    host = pki.ensure_host_cert(inter, tmp_path / "hosts", "mx1", NAMES, now=NOW)
    with pytest.raises(PkiError, match="append the intermediate") as err:
        pki.check_chain(host.cert_path, ca.cert_path)
    assert "CN=Ministry issuing CA" in str(err.value)


# -- Checks of supplied certificates -----------------------------------------


def test_check_pair_accepts_a_matching_valid_pair(host: pki.HostCert):
    pki.check_pair(host.cert_path, host.key_path, now=NOW)
    pki.check_pair(host.fullchain_path, host.key_path, now=NOW)


def test_check_pair_names_both_files_when_the_key_does_not_match(
    ca: pki.CA, host: pki.HostCert, tmp_path: Path
):
    other_key = tmp_path / "other.key"
    other_key.write_bytes(pki.issue(ca, NAMES, now=NOW).key_pem)
    with pytest.raises(PkiError, match="is not the private key of") as err:
        pki.check_pair(host.cert_path, other_key, now=NOW)
    assert str(other_key) in str(err.value)
    assert str(host.cert_path) in str(err.value)
    assert "openssl pkey -pubout" in str(err.value), "the message says how to compare them"


@pytest.mark.parametrize("which", ["cert", "key"])
def test_check_pair_names_a_missing_file(host: pki.HostCert, tmp_path: Path, which: str):
    missing = tmp_path / "nowhere" / f"missing.{which}"
    cert = missing if which == "cert" else host.cert_path
    key = missing if which == "key" else host.key_path
    with pytest.raises(PkiError, match="no such file") as err:
        pki.check_pair(cert, key, now=NOW)
    assert str(missing) in str(err.value)


def test_check_pair_refuses_a_directory(host: pki.HostCert, tmp_path: Path):
    with pytest.raises(PkiError, match="is a directory"):
        pki.check_pair(tmp_path, host.key_path, now=NOW)


def test_check_pair_says_when_a_file_is_unreadable(host: pki.HostCert, monkeypatch):
    # chmod 000 cannot stop root (which runs the lab), so the read fails by hand.
    real_read_bytes = Path.read_bytes

    def read_bytes(path: Path) -> bytes:
        if path == host.key_path:
            raise PermissionError(13, "Permission denied", str(path))
        return real_read_bytes(path)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    with pytest.raises(PkiError, match="permission denied. Make the private key readable") as err:
        pki.check_pair(host.cert_path, host.key_path, now=NOW)
    assert str(host.key_path) in str(err.value)


@pytest.mark.parametrize("which", ["cert", "key"])
def test_check_pair_refuses_garbage_that_is_not_pem(host: pki.HostCert, tmp_path: Path, which):
    junk = tmp_path / "junk.pem"
    junk.write_text("-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n")
    if which == "key":
        junk.write_text("hello, I am not a key\n")
    cert = junk if which == "cert" else host.cert_path
    key = junk if which == "key" else host.key_path
    with pytest.raises(PkiError, match="is not a PEM") as err:
        pki.check_pair(cert, key, now=NOW)
    assert str(junk) in str(err.value)


def test_check_pair_explains_how_to_convert_a_der_certificate(host: pki.HostCert, tmp_path: Path):
    der = tmp_path / "host.der"
    der.write_bytes(load_cert(host.cert_path).public_bytes(serialization.Encoding.DER))
    with pytest.raises(PkiError, match="DER.*openssl x509 -inform der"):
        pki.check_pair(der, host.key_path, now=NOW)


def test_check_pair_notices_swapped_certificate_and_key(host: pki.HostCert):
    with pytest.raises(PkiError, match="swapped"):
        pki.check_pair(host.key_path, host.cert_path, now=NOW)


def test_check_pair_refuses_a_key_inside_the_world_readable_certificate_file(
    host: pki.HostCert, tmp_path: Path
):
    combined = tmp_path / "combined.pem"
    combined.write_bytes(host.key_path.read_bytes() + host.cert_path.read_bytes())
    with pytest.raises(PkiError, match="private key as well.*own file"):
        pki.check_pair(combined, host.key_path, now=NOW)


def test_check_pair_refuses_an_expired_certificate(ca: pki.CA, tmp_path: Path):
    old = pki.write_issued(pki.issue(ca, NAMES, days=397, now=NOW - 400 * DAY), tmp_path, "old")
    with pytest.raises(PkiError, match="expired on 2026-02-26") as err:
        pki.check_pair(old.cert_path, old.key_path, now=NOW)
    assert str(old.cert_path) in str(err.value)


def test_check_pair_refuses_a_certificate_that_is_not_valid_yet(ca: pki.CA, tmp_path: Path):
    future = pki.write_issued(pki.issue(ca, NAMES, now=NOW + 2 * DAY), tmp_path, "future")
    with pytest.raises(PkiError, match="not valid before.*clock"):
        pki.check_pair(future.cert_path, future.key_path, now=NOW)


@pytest.mark.parametrize(
    "key_format",
    [serialization.PrivateFormat.PKCS8, serialization.PrivateFormat.TraditionalOpenSSL],
    ids=["pkcs8", "traditional"],
)
def test_check_pair_explains_an_encrypted_key_instead_of_a_traceback(
    host: pki.HostCert, tmp_path: Path, key_format
):
    key = serialization.load_pem_private_key(host.key_path.read_bytes(), None)
    locked = tmp_path / "locked.key"
    locked.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            key_format,
            serialization.BestAvailableEncryption(b"s3cret"),
        )
    )
    with pytest.raises(PkiError, match="encrypted with a passphrase and none was given") as err:
        pki.check_pair(host.cert_path, locked, now=NOW)
    assert str(locked) in str(err.value)
    assert "openssl pkey" in str(err.value)
    pki.check_pair(host.cert_path, locked, passphrase=b"s3cret", now=NOW)


def test_check_pair_refuses_an_rsa_key_that_openssl_3_refuses(tmp_path: Path):
    cert, key = write_pem_pair(tmp_path, rsa.generate_private_key(65537, 1024), san=["a.example"])
    with pytest.raises(PkiError, match="1024-bit RSA key.*under 2048"):
        pki.check_pair(cert, key)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_check_pair_refuses_a_sha1_signature(tmp_path: Path):
    # cryptography no longer signs with SHA-1, so openssl makes the old certificate.
    key, cert = tmp_path / "old.key", tmp_path / "old.crt"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-sha1", "-days", "30", "-subj", "/CN=old.example",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    with pytest.raises(PkiError, match="signed with SHA1.*SHA-256"):
        pki.check_pair(cert, key)


def test_check_chain_accepts_the_issuing_ca(ca: pki.CA, host: pki.HostCert):
    pki.check_chain(host.cert_path, ca.cert_path)


def test_check_chain_names_the_issuer_when_another_ca_is_given(host: pki.HostCert, tmp_path: Path):
    other = pki.create_ca(tmp_path / "other", common_name="Some other CA", now=NOW)
    with pytest.raises(PkiError, match="was not issued by the CA in") as err:
        pki.check_chain(host.cert_path, other.cert_path)
    assert "CN=hopthu lab CA" in str(err.value) and "CN=Some other CA" in str(err.value)


def test_check_chain_tells_a_same_named_impostor_ca_apart(host: pki.HostCert, tmp_path: Path):
    twin = pki.create_ca(tmp_path / "twin", now=NOW)  # same default CN, other key
    with pytest.raises(PkiError, match="signature does not verify with that CA's key"):
        pki.check_chain(host.cert_path, twin.cert_path)


@pytest.mark.parametrize(
    ("wanted", "covered"),
    [
        ("mail.example.org", True),
        ("MAIL.Example.org.", True),
        ("example.org", True),
        ("imap.example.org", True),  # through *.example.org
        ("a.b.example.org", False),  # * matches one label only (RFC 6125 §6.4.3)
        ("example.net", False),
        ("*.example.org", True),  # the same wildcard
        ("198.18.0.10", True),
        ("198.18.0.11", False),
    ],
)
def test_check_names_follows_rfc_6125(ca: pki.CA, tmp_path: Path, wanted: str, covered: bool):
    issued = pki.issue(ca, ["mail.example.org", "*.example.org", "example.org"], IPS, now=NOW)
    paths = pki.write_issued(issued, tmp_path, "wild")
    if covered:
        pki.check_names(paths.cert_path, [wanted])
    else:
        with pytest.raises(PkiError, match=f"does not cover {wanted}"):
            pki.check_names(paths.cert_path, [wanted])


def test_check_names_lists_what_is_missing_and_what_is_covered(host: pki.HostCert):
    with pytest.raises(PkiError) as err:
        pki.check_names(host.cert_path, [*NAMES, "imap.lab.example", "pop.lab.example"])
    message = str(err.value)
    assert str(host.cert_path) in message
    assert "does not cover imap.lab.example, pop.lab.example" in message
    assert "it covers mail.lab.example, mx1.lab.example, 198.18.0.10" in message


def test_check_names_says_the_cn_alone_is_not_enough(tmp_path: Path):
    cert, _ = write_pem_pair(tmp_path, ec.generate_private_key(ec.SECP256R1()), san=None)
    with pytest.raises(PkiError, match="no subjectAltName.*ignore the CN"):
        pki.check_names(cert, ["old.example.org"])


# -- Expiry ------------------------------------------------------------------


def test_days_left_rounds_down_and_goes_negative(host: pki.HostCert):
    assert pki.days_left(host.cert_path, now=NOW) == 397
    assert pki.days_left(host.cert_path, now=NOW + timedelta(seconds=1)) == 396
    assert pki.days_left(host.cert_path, now=NOW + 398 * DAY) == -1


@pytest.mark.parametrize(("left", "warns"), [(22, False), (21, True), (20, True)])
def test_expiry_warning_starts_21_days_before(host: pki.HostCert, left: int, warns: bool):
    now = NOW + (397 - left) * DAY
    message = pki.expiry_warning(host.cert_path, now=now)
    if not warns:
        assert message is None
        return
    assert message == (
        f"{host.cert_path} expires in {left} days (on 2027-04-02 12:00 UTC): renew it. A "
        "certificate from hopthu's internal CA is renewed by the next deploy; replace a "
        "certificate you supplied with a renewed one, then deploy."
    )


def test_expiry_warning_for_an_expired_certificate_says_so(host: pki.HostCert):
    message = pki.expiry_warning(host.cert_path, now=NOW + 400 * DAY)
    assert message is not None
    assert message.startswith(
        f"{host.cert_path} expired on 2027-04-02 12:00 UTC and clients refuse it: renew it now."
    )


# -- The real openssl --------------------------------------------------------


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_openssl_verifies_the_host_certificate_and_shows_its_sans(tmp_path: Path):
    # Made at the real time: openssl checks validity against its own clock.
    ca = pki.create_ca(tmp_path / "ca")
    host = pki.ensure_host_cert(ca, tmp_path / "hosts", "mx1", NAMES, IPS)
    verify = subprocess.run(
        ["openssl", "verify", "-x509_strict", "-purpose", "sslserver",
         "-verify_hostname", NAMES[1], "-CAfile", str(ca.cert_path), str(host.cert_path)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert verify.stdout.strip() == f"{host.cert_path}: OK"

    sans = subprocess.run(
        ["openssl", "x509", "-noout", "-ext", "subjectAltName", "-in", str(host.cert_path)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "DNS:mail.lab.example, DNS:mx1.lab.example, IP Address:198.18.0.10" in sans.stdout


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_openssl_rejects_a_revoked_certificate_with_the_crl_and_accepts_the_others(
    tmp_path: Path,
):
    # Made at the real time: openssl checks the CRL's dates against its own clock.
    ca = pki.create_ca(tmp_path / "ca")
    good = pki.ensure_host_cert(ca, tmp_path / "hosts", "mx1", NAMES, IPS, crl_url=CRL_URL)
    bad = pki.ensure_host_cert(ca, tmp_path / "hosts", "mx2", NAMES, IPS, crl_url=CRL_URL)
    done = pki.revoke(ca, load_cert(bad.cert_path).serial_number, "key_compromise")
    # -CRLfile wants PEM; ca.crl is DER, as served over HTTP.
    crl_pem = tmp_path / "crl.pem"
    crl_pem.write_bytes(done.crl.crl.public_bytes(serialization.Encoding.PEM))

    def verify(cert: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["openssl", "verify", "-x509_strict", "-crl_check", "-purpose", "sslserver",
             "-CAfile", str(ca.cert_path), "-CRLfile", str(crl_pem), str(cert)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip

    ok = verify(good.cert_path)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    refused = verify(bad.cert_path)
    assert refused.returncode != 0
    assert "certificate revoked" in refused.stdout + refused.stderr
    text = subprocess.run(
        ["openssl", "x509", "-noout", "-ext", "crlDistributionPoints", "-in", str(good.cert_path)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert f"URI:{CRL_URL}" in text
