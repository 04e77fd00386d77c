"""The internal CA: create it, issue host certificates, check certificates.

Where this sits (DESIGN.md §3, TLS). Every TLS endpoint of the mail system
(Postfix on 25, 465 and 587, Dovecot on 993, 995 and 4190, nginx for the
password portal and the MTA-STS policy) needs a certificate whose names cover
the names clients connect to. A certificate comes from one of two places:

* **The internal CA** (this module). The lab always uses it and the ministry
  may use it in production. It lives on the controller, the machine that runs
  the deploy. Host keys and certificates leave the controller; ``ca.key`` never
  does. `load_or_create_ca` makes the CA once, and `ensure_host_cert` issues or
  renews a host's certificate only when it has to, so a second deploy writes no
  new bytes.
* **Certificates the operator supplies** (bought, or issued by the ministry's
  own CA). The settings check calls `check_pair`, `check_chain` and
  `check_names` before any host is touched, and the infra suite calls
  `expiry_warning`. Each failure raises `PkiError` with a message that names
  the file and says what to do.

Choices, and why:

* **Keys.** ECDSA P-256 with SHA-256 by default: every current mail client,
  Postfix and Dovecot on OpenSSL 3 handle it, and its handshakes are small and
  fast. RSA 3072 (``key_type="rsa"``) is there for the old mail clients some
  ministry units still run, which cannot do ECDSA. 3072 bits gives about the
  same strength as P-256 (NIST SP 800-57 Part 1, Table 2). A client without
  ECDSA cannot check the CA's signature on an RSA host certificate either, so
  such a site needs an RSA CA too: ``create_ca(..., key_type="rsa")``.
* **Validity.** The CA gets 10 years, because replacing it means touching
  every host's and every client's trust store. Host certificates get 397
  days. That is the CA/Browser Forum limit for public TLS certificates (398
  days) minus a day of margin, so internal and bought certificates live under
  the same rules, tools and monitoring. The deploy renews a certificate 30
  days before it expires. The infra suite warns at 21 days, so a warning means
  the deploys have stopped running.
* **Shape.** The CA has ``pathLenConstraint=0``: it signs host certificates
  and nothing that could itself sign. Host certificates carry both serverAuth
  and clientAuth, because Postfix presents the same certificate when it
  relays to another MTA. Serial numbers are 159 random bits (RFC 5280
  §4.1.2.2: positive, at most 20 octets; the CA/B Baseline Requirements ask
  for at least 64 random bits). ``notBefore`` is set 10 minutes in the past,
  so a host whose clock runs a little behind the controller's still accepts a
  fresh certificate.
* **Files.** Keys are written with mode 0600 from the first byte (through a
  temporary file, then an atomic rename). Certificates are written with mode
  0644. An existing CA key is never overwritten.
* **Revocation.** A CA that cannot revoke cannot answer a leaked key before
  the certificate expires. Every host certificate `ensure_host_cert` issues
  names the CA's CRL in a cRLDistributionPoints extension (an ``http://``
  URL, pki__crl_url: a client fetches a CRL before it can trust any TLS
  certificate, so the URL must not need TLS; RFC 5280 §4.2.1.13). The CA
  keeps three files beside ``ca.crt``:

  - ``issued/<SERIAL>.crt``: a copy of every certificate it issued, named by
    its serial in upper-case hex (as ``openssl x509 -noout -serial`` prints
    it), like ``openssl ca``'s newcerts directory. `revoke` refuses a serial
    that is not there, and a certificate stays revocable after a newer one
    has replaced it on the host.
  - ``revoked.txt``: the revoked certificates, one per line: the serial, the
    time of revocation (UTC, ISO 8601, e.g. ``2026-03-01T12:00:00Z``) and
    the reason (a name from `REVOKE_REASONS`, RFC 5280 §5.3.1), optionally
    followed by ``#`` and the certificate's names for the reader. Lines
    starting with ``#`` are comments. `revoke` appends to it.
  - ``ca.crl``: the CRL, **DER**, because RFC 5280 §4.2.1.13 says an HTTP
    distribution point serves a single DER-encoded CRL (MIME type
    ``application/pkix-crl``, RFC 2585); ``openssl crl -inform DER -noout
    -text -in ca.crl`` shows it. It carries the CRL Number and the CA's
    AuthorityKeyIdentifier (both required by RFC 5280 §5.2), is valid for
    30 days, and is signed again only when the revoked list changes, the
    CA changes, or fewer than 10 days of validity remain (`refresh_crl`),
    so a deploy run twice writes it once. Its number is the Unix time of
    signing, or the previous number plus one if that is larger: it always
    grows, even if ``ca.crl`` is lost. Revoked entries stay on the CRL.

  A revoked host certificate is issued again by the next `ensure_host_cert`.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import stat
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

KeyType = Literal["ec", "rsa"]
PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: The CA's files, inside the directory given to `create_ca`/`load_or_create_ca`.
CA_CERT = "ca.crt"
CA_KEY = "ca.key"
#: Its revocation files, beside them (see "Revocation" in the module's docstring).
CA_CRL = "ca.crl"
REVOKED_LIST = "revoked.txt"
ISSUED_DIR = "issued"

KEY_MODE = 0o600
CERT_MODE = 0o644

#: Default lifetimes and renewal, in days (see the module's docstring for why).
CA_DAYS = 3650
HOST_DAYS = 397
RENEW_BEFORE_DAYS = 30
WARN_DAYS = 21
#: A CRL is valid for CRL_DAYS and signed again when fewer than
#: CRL_REFRESH_DAYS remain, so a deploy at least every 20 days keeps it valid,
#: with 10 days for a client's cached copy.
CRL_DAYS = 30
CRL_REFRESH_DAYS = 10

#: The reasons `revoke` accepts (RFC 5280 §5.3.1), by cryptography's
#: ReasonFlags names. certificateHold is left out: a hold can be lifted, and
#: the CA/Browser Forum Baseline Requirements forbid it; the CA and AA
#: reasons do not apply to host certificates. "unspecified" puts no reason
#: code on the CRL entry (RFC 5280 §5.3.1: the code is then absent).
REVOKE_REASONS: dict[str, x509.ReasonFlags] = {
    flag.name: flag
    for flag in (
        x509.ReasonFlags.unspecified,
        x509.ReasonFlags.key_compromise,
        x509.ReasonFlags.affiliation_changed,
        x509.ReasonFlags.superseded,
        x509.ReasonFlags.cessation_of_operation,
        x509.ReasonFlags.privilege_withdrawn,
    )
}

#: RSA size for ``key_type="rsa"``: about as strong as P-256 (NIST SP 800-57).
RSA_BITS = 3072
#: Below this, OpenSSL 3 at Debian's default security level 2 refuses the key.
RSA_MIN_BITS = 2048
#: How far notBefore is set in the past, for clock skew between hosts.
BACKDATE = timedelta(minutes=10)

_DAY = timedelta(days=1)
# The time of revocation in revoked.txt.
_REVOKED_TIME = "%Y-%m-%dT%H:%M:%SZ"
# One DNS label in LDH form (RFC 1123 §2.1). Underscores are not allowed in
# certificate names (CA/B Baseline Requirements §7.1.4.2.1).
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
# A file name for write_issued/ensure_host_cert: no directories, no dot files.
_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
# ub-common-name (RFC 5280 Appendix A.1).
_CN_MAX = 64


class PkiError(ValueError):
    """A certificate or key problem, explained for the operator: the file, what
    is wrong with it, and what to do."""


@dataclass(frozen=True)
class CA:
    """A CA that can issue: its certificate, its key, and where they live.

    ``chain`` holds the certificates that follow the first one in the CA's
    certificate file: the issuers of an intermediate CA, up to the root. The
    internal CA is a root, so its chain is empty.
    """

    cert: x509.Certificate
    key: PrivateKey
    cert_path: Path
    key_path: Path
    chain: tuple[x509.Certificate, ...] = ()

    @property
    def cert_pem(self) -> bytes:
        """The CA certificate(s) in PEM: what the hosts and clients must trust."""
        return b"".join(_pem(c) for c in (self.cert, *self.chain))

    @property
    def directory(self) -> Path:
        """Where the CA keeps its CRL, its revoked list and the copies of what
        it issued: beside its certificate."""
        return self.cert_path.parent


@dataclass(frozen=True)
class Issued:
    """A freshly issued host certificate and its key, as PEM bytes.

    ``chain_pem`` is the CA part only (certbot's ``chain.pem``), and
    ``fullchain_pem`` is the certificate followed by it: what Postfix
    (``smtpd_tls_chain_files``), Dovecot (``ssl_server_cert_file``) and nginx
    (``ssl_certificate``) serve.
    """

    cert: x509.Certificate
    key_pem: bytes
    cert_pem: bytes
    chain_pem: bytes

    @property
    def fullchain_pem(self) -> bytes:
        return self.cert_pem + self.chain_pem


@dataclass(frozen=True)
class HostCert:
    """The files of a host's certificate, and whether `ensure_host_cert`
    changed them (for the engines' "changed" report) and why."""

    key_path: Path
    cert_path: Path
    fullchain_path: Path
    changed: bool
    reason: str


@dataclass(frozen=True)
class Revoked:
    """One line of ``revoked.txt``: a certificate the CA has revoked."""

    serial: int
    revoked_at: datetime
    reason: x509.ReasonFlags
    #: The certificate's names, for the person reading the file; not on the CRL.
    note: str = ""


@dataclass(frozen=True)
class CrlFile:
    """The CA's CRL on the controller, and whether `refresh_crl` wrote it and why."""

    path: Path
    crl: x509.CertificateRevocationList
    changed: bool
    reason: str

    @property
    def next_update(self) -> datetime:
        # refresh_crl always sets nextUpdate (RFC 5280 §5.1.2.5: conforming
        # CAs MUST include it).
        assert self.crl.next_update_utc is not None
        return self.crl.next_update_utc

    @property
    def number(self) -> int:
        return self.crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number


@dataclass(frozen=True)
class Revocation:
    """What `revoke` did: the entry (new, or the one already there), the
    certificate it names, and the CRL."""

    entry: Revoked
    cert: x509.Certificate
    changed: bool
    crl: CrlFile


# -- The CA ------------------------------------------------------------------


def create_ca(
    directory: Path,
    common_name: str = "hopthu lab CA",
    days: int = CA_DAYS,
    key_type: KeyType = "ec",
    *,
    passphrase: bytes | None = None,
    now: datetime | None = None,
) -> CA:
    """Create a self-signed CA as ``directory/ca.crt`` (0644) and ``ca.key``
    (0600), and return it.

    Refuses to overwrite either file. ``passphrase`` encrypts ``ca.key``.
    """
    directory = Path(directory)
    _check_days(days)
    if not 1 <= len(common_name) <= _CN_MAX:
        raise PkiError(
            f"the CA's common name must have 1 to {_CN_MAX} characters; got {common_name!r}."
        )
    now = _utc(now)
    cert_path, key_path = directory / CA_CERT, directory / CA_KEY
    for path in (key_path, cert_path):
        if path.exists():
            raise PkiError(
                f"{path} already exists: refusing to overwrite a CA. Use "
                f"load_or_create_ca() to reuse it, or move {directory} away to start a new CA "
                "(then every host and client must trust the new one)."
            )
    # 0700: ca.key is the one secret that lets anyone impersonate every host.
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)

    key = _new_key(key_type)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + days * _DAY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase)
        if passphrase
        else serialization.NoEncryption()
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )
    # The key first and exclusively: if two deploys race, one of them fails
    # here instead of replacing a key the other has already used.
    _write_file(key_path, key_pem, KEY_MODE, exclusive=True)
    _write_file(cert_path, _pem(cert), CERT_MODE, exclusive=True)
    return CA(cert=cert, key=key, cert_path=cert_path, key_path=key_path)


def load_ca(
    cert_path: Path,
    key_path: Path,
    *,
    passphrase: bytes | None = None,
    now: datetime | None = None,
) -> CA:
    """Load a CA that can issue: the internal one, or the ministry's own.

    Checks that the certificate is a CA certificate, that the key belongs to
    it, and that it is valid now. Further certificates in the CA's file (the
    issuers of an intermediate CA) are kept as its chain.
    """
    cert_path, key_path = Path(cert_path), Path(key_path)
    certs = _load_certs(cert_path, "CA certificate")
    cert = certs[0]
    key = _load_key(key_path, "CA key", passphrase)
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise PkiError(
            f"{key_path}: a {type(key).__name__} CA key cannot issue certificates that every mail "
            "client accepts: use an ECDSA or RSA CA."
        )
    _check_key_matches(cert, cert_path, key, key_path)
    try:
        is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    if not is_ca:
        raise PkiError(
            f"{cert_path} is not a CA certificate (it has no basicConstraints CA:TRUE): give the "
            "certificate of the CA that signs the host certificates, not a host certificate."
        )
    with contextlib.suppress(x509.ExtensionNotFound):
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        if not usage.key_cert_sign:
            raise PkiError(
                f"{cert_path}: this CA certificate's keyUsage does not allow keyCertSign, so "
                "clients would refuse every certificate it signs: use the CA's signing certificate."
            )
    _check_validity(cert, cert_path, _utc(now), "CA certificate")
    return CA(cert=cert, key=key, cert_path=cert_path, key_path=key_path, chain=tuple(certs[1:]))


def load_or_create_ca(
    directory: Path,
    common_name: str = "hopthu lab CA",
    days: int = CA_DAYS,
    key_type: KeyType = "ec",
    *,
    passphrase: bytes | None = None,
    now: datetime | None = None,
) -> CA:
    """Return the CA in ``directory``, creating it if neither file exists.

    An existing CA is returned as it is: ``common_name``, ``days`` and
    ``key_type`` apply only to a new one. If only one of ``ca.crt`` and
    ``ca.key`` exists, nothing is written: a new key would orphan every
    certificate and trust store that relies on the old one.
    """
    directory = Path(directory)
    cert_path, key_path = directory / CA_CERT, directory / CA_KEY
    has_cert, has_key = cert_path.exists(), key_path.exists()
    if has_cert and has_key:
        return load_ca(cert_path, key_path, passphrase=passphrase, now=now)
    if has_key:
        raise PkiError(
            f"{key_path} exists but {cert_path} does not. Restore {CA_CERT} from a backup. If this "
            f"CA was never used, delete {key_path} and deploy again to create a new CA."
        )
    if has_cert:
        raise PkiError(
            f"{cert_path} exists but {key_path} does not, so the CA cannot issue. Restore "
            f"{CA_KEY} from a backup, or move {directory} away to create a new CA (then every "
            "host and client must trust the new one)."
        )
    return create_ca(directory, common_name, days, key_type, passphrase=passphrase, now=now)


# -- Host certificates -------------------------------------------------------


def issue(
    ca: CA,
    names: Sequence[str],
    ip_addresses: Iterable[str | IPAddress] = (),
    days: int = HOST_DAYS,
    key_type: KeyType = "ec",
    *,
    crl_url: str | None = None,
    now: datetime | None = None,
) -> Issued:
    """Issue a host certificate with a new key, for ``names`` (the first one is
    also the CN) and ``ip_addresses``.

    ``crl_url`` (an ``http://`` URL) goes into a cRLDistributionPoints
    extension; without it the certificate names no CRL. The certificate never
    outlives the CA: its notAfter is cut to the CA's. ``now`` sets the
    issuing time (tests use it to make expired certificates).
    """
    dns = _dns_names(names)
    ips = _ip_addresses(ip_addresses)
    if not dns:
        raise PkiError("a host certificate needs at least one DNS name; none was given.")
    _check_days(days)
    if crl_url is not None:
        check_crl_url(crl_url)
    now = _utc(now)
    key = _new_key(key_type)

    # RFC 5280 §4.2.1.6: with an empty subject, the SAN extension is critical.
    # A name longer than ub-common-name cannot be the CN, and clients match on
    # the SANs anyway (RFC 6125 §6.4.4).
    if len(dns[0]) <= _CN_MAX:
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns[0])])
    else:
        subject = x509.Name([])
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in dns]
    sans += [x509.IPAddress(ip) for ip in ips]
    is_rsa = isinstance(key, rsa.RSAPrivateKey)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(min(now + days * _DAY, ca.cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                # RSA key transport (TLS 1.2 RSA kx) needs keyEncipherment;
                # ECDSA keys never encipher (RFC 8813 §3).
                key_encipherment=is_rsa,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectAlternativeName(sans), critical=len(subject) == 0)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(_authority_key_id(ca), critical=False)
    )
    if crl_url is not None:
        # Non-critical (RFC 5280 §4.2.1.13 recommends it): a client that
        # cannot fetch CRLs still accepts the certificate.
        builder = builder.add_extension(_crl_distribution_points(crl_url), critical=False)
    cert = builder.sign(ca.key, hashes.SHA256())
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return Issued(cert=cert, key_pem=key_pem, cert_pem=_pem(cert), chain_pem=ca.cert_pem)


def write_issued(issued: Issued, directory: Path, name: str) -> HostCert:
    """Write ``<name>.key`` (0600), ``<name>.crt`` and ``<name>.fullchain.pem``
    (0644) into ``directory``, each by an atomic rename."""
    directory = Path(directory)
    key_path, cert_path, fullchain_path = _host_paths(directory, name)
    directory.mkdir(parents=True, exist_ok=True)
    # Key first: if the run dies in between, the next ensure_host_cert sees a
    # key that does not match the certificate and issues again.
    _write_file(key_path, issued.key_pem, KEY_MODE)
    _write_file(cert_path, issued.cert_pem, CERT_MODE)
    _write_file(fullchain_path, issued.fullchain_pem, CERT_MODE)
    return HostCert(key_path, cert_path, fullchain_path, changed=True, reason="issued")


def ensure_host_cert(
    ca: CA,
    directory: Path,
    name: str,
    names: Sequence[str],
    ip_addresses: Iterable[str | IPAddress] = (),
    renew_before_days: int = RENEW_BEFORE_DAYS,
    *,
    days: int = HOST_DAYS,
    key_type: KeyType = "ec",
    crl_url: str | None = None,
    now: datetime | None = None,
) -> HostCert:
    """Make sure ``directory/<name>.{key,crt,fullchain.pem}`` hold a good
    certificate for ``names`` and ``ip_addresses`` from ``ca``, naming the
    CRL at ``crl_url`` (or no CRL if it is None).

    A new key and certificate are issued only if a file is missing or
    unreadable, the key does not match, the names or the key type changed, the
    certificate is not from ``ca``, it names another CRL (or none), it has
    been revoked (``revoked.txt``), or it expires within
    ``renew_before_days``. Otherwise nothing is written to ``directory`` (a
    changed ``days`` waits for the next renewal), apart from repairing the
    key's mode or a stale fullchain file.

    Every certificate of ``ca`` found or issued here is also kept in the CA's
    ``issued/`` directory (once), so that `revoke` knows it.
    """
    directory = Path(directory)
    key_path, cert_path, fullchain_path = _host_paths(directory, name)
    dns, ips = _dns_names(names), _ip_addresses(ip_addresses)
    if crl_url is not None:
        check_crl_url(crl_url)
    now = _utc(now)
    revoked = {entry.serial: entry for entry in read_revoked(ca)}

    # The certificate in place, if it is ours, stays revocable after it is replaced.
    current = _read_cert(cert_path)
    if current is not None and _issued_by(current, ca.cert):
        _record_issued(ca, current)

    why = _why_reissue(
        ca, key_path, cert_path, dns, ips, key_type, renew_before_days, now,
        crl_url=crl_url, revoked=revoked,
    )  # fmt: skip
    if why:
        issued = issue(ca, dns, ips, days, key_type, crl_url=crl_url, now=now)
        # Recorded before the host files: a certificate that may reach a host
        # must be revocable.
        _record_issued(ca, issued.cert)
        write_issued(issued, directory, name)
        return HostCert(key_path, cert_path, fullchain_path, changed=True, reason=f"issued: {why}")

    repairs: list[str] = []
    key_mode = stat.S_IMODE(key_path.stat().st_mode)
    if key_mode != KEY_MODE:
        key_path.chmod(KEY_MODE)
        repairs.append(f"set {key_path.name} mode from {key_mode:04o} to {KEY_MODE:04o}")
    fullchain = cert_path.read_bytes() + ca.cert_pem
    if not fullchain_path.exists() or fullchain_path.read_bytes() != fullchain:
        _write_file(fullchain_path, fullchain, CERT_MODE)
        repairs.append(f"rewrote {fullchain_path.name}")
    if repairs:
        return HostCert(key_path, cert_path, fullchain_path, True, "; ".join(repairs))
    return HostCert(key_path, cert_path, fullchain_path, changed=False, reason="up to date")


def _why_reissue(
    ca: CA,
    key_path: Path,
    cert_path: Path,
    dns: list[str],
    ips: list[IPAddress],
    key_type: KeyType,
    renew_before_days: int,
    now: datetime,
    *,
    crl_url: str | None = None,
    revoked: Mapping[int, Revoked] | None = None,
) -> str | None:
    """Why the host's certificate must be issued again, or None if it is fine."""
    if not key_path.exists() and not cert_path.exists():
        return "no certificate yet"
    for path in (key_path, cert_path):
        if not path.exists():
            return f"{path.name} is missing"
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        return f"{cert_path.name} or {key_path.name} cannot be read"
    if _spki(cert.public_key()) != _spki(key.public_key()):
        return f"{key_path.name} does not match {cert_path.name}"
    if not _issued_by(cert, ca.cert):
        return f"{cert_path.name} was not issued by the CA in {ca.cert_path}"
    have_key_type = "rsa" if isinstance(key, rsa.RSAPrivateKey) else "ec"
    if have_key_type != key_type:
        return f"key type changed from {have_key_type} to {key_type}"
    have_dns, have_ips = _cert_names(cert)
    if have_dns != dns or have_ips != ips:
        return _describe_name_change(have_dns + have_ips, dns + ips)
    entry = (revoked or {}).get(cert.serial_number)
    if entry is not None:
        return (
            f"{cert_path.name} (serial {serial_hex(entry.serial)}) was revoked on "
            f"{_when(entry.revoked_at)} ({entry.reason.name})"
        )
    have_crl = _crl_urls(cert)
    want_crl = [crl_url] if crl_url is not None else []
    if have_crl != want_crl:
        return _describe_crl_change(cert_path.name, have_crl, want_crl)
    if cert.not_valid_before_utc > now:
        return f"{cert_path.name} is not valid yet (check the controller's clock)"
    left = cert.not_valid_after_utc - now
    if left <= timedelta(0):
        return f"{cert_path.name} expired on {_when(cert.not_valid_after_utc)}"
    if left < renew_before_days * _DAY:
        return f"{cert_path.name} expires in {_days(left // _DAY)}"
    return None


def _describe_crl_change(name: str, have: Sequence[str], want: Sequence[str]) -> str:
    if not have:
        return f"{name} names no CRL distribution point; it must name {want[0]}"
    if not want:
        return f"{name} names the CRL {', '.join(have)}, but no CRL URL is set"
    return f"CRL distribution point changed from {', '.join(have)} to {want[0]}"


def _describe_name_change(have: Sequence[object], want: Sequence[object]) -> str:
    added = [str(n) for n in want if n not in have]
    removed = [str(n) for n in have if n not in want]
    parts = []
    if added:
        parts.append("added " + ", ".join(added))
    if removed:
        parts.append("removed " + ", ".join(removed))
    return "names changed: " + ("; ".join(parts) if parts else "new order (the CN is the first)")


# -- Revocation --------------------------------------------------------------


def check_crl_url(url: str) -> None:
    """A CRL URL for a certificate: plain http://, ASCII (an IA5String), a host
    and a file. pydantic checks pki__crl_url the same way (CrlUrl), naming the
    settings key."""
    problem = crl_url_problem(url) if isinstance(url, str) else "is not a string"
    if problem:
        raise PkiError(
            f"the CRL URL {url!r} {problem}: give an http:// URL with a host and a file, e.g. "
            "http://pki.example.org/hopthu-ca.crl."
        )


def crl_url_problem(url: str) -> str | None:
    """What is wrong with ``url`` as a CRL distribution point, or None."""
    if any(c.isspace() for c in url):
        return "contains spaces"
    if not url.isascii():
        return "is not ASCII (write an internationalised host name as its xn-- A-label)"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        return f"is not a URL ({exc})"
    if parts.scheme == "https":
        return (
            "uses https://, but a CRL must be fetchable without TLS: a client checks "
            "revocation before it can trust a TLS certificate (RFC 5280 §4.2.1.13, RFC 5019)"
        )
    if parts.scheme != "http":
        return f"has the scheme {parts.scheme!r}" if parts.scheme else "has no scheme"
    if not parts.hostname:
        return "has no host"
    if port == 0:
        return "has port 0"
    if parts.username is not None or parts.password is not None:
        return "carries a user name or password"
    if not parts.path or parts.path.endswith("/"):
        return "names no file (its path is empty or ends with '/')"
    if parts.query or parts.fragment:
        return "has a query or fragment"
    return None


def serial_hex(serial: int) -> str:
    """A serial number as ``openssl x509 -noout -serial`` prints it: upper-case
    hex, whole bytes."""
    text = f"{serial:X}"
    return text if len(text) % 2 == 0 else f"0{text}"


def parse_serial(text: str) -> int:
    """A serial number given in hex, as openssl prints it (``serial=`` and
    ``0x`` prefixes, colons and case do not matter)."""
    raw = text
    text = text.strip()
    for prefix in ("serial=", "0x", "0X"):
        text = text.removeprefix(prefix)
    text = text.replace(":", "")
    # RFC 5280 §4.1.2.2: a positive integer of at most 20 octets.
    if not re.fullmatch(r"[0-9A-Fa-f]{1,40}", text) or int(text, 16) == 0:
        raise PkiError(
            f"{raw!r} is not a certificate serial number: give it in hex, as "
            "`openssl x509 -noout -serial -in FILE` prints it (e.g. 4F0E9A...); up to 40 hex "
            "digits, not 0."
        )
    return int(text, 16)


def read_revoked(ca: CA) -> list[Revoked]:
    """The CA's ``revoked.txt``, in file order; empty if there is none."""
    path = ca.directory / REVOKED_LIST
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except (OSError, UnicodeError) as exc:
        raise PkiError(f"{path}: cannot read the revoked list: {exc}.") from None
    entries: list[Revoked] = []
    for number, line in enumerate(text.splitlines(), 1):
        data, _, note = line.partition("#")
        fields = data.split()
        if not fields:
            continue
        where = f"{path}:{number}"
        form = (
            "SERIAL (hex) TIME (UTC, e.g. 2026-03-01T12:00:00Z) REASON "
            f"({', '.join(REVOKE_REASONS)}), then optionally '# names'"
        )
        if len(fields) != 3:
            raise PkiError(f"{where}: {line.strip()!r} is not a revoked entry; write {form}.")
        try:
            serial = parse_serial(fields[0])
        except PkiError as exc:
            raise PkiError(f"{where}: {exc}") from None
        try:
            when = datetime.strptime(fields[1], _REVOKED_TIME).replace(tzinfo=UTC)
        except ValueError:
            raise PkiError(f"{where}: {fields[1]!r} is not a UTC time; write {form}.") from None
        if fields[2] not in REVOKE_REASONS:
            raise PkiError(f"{where}: {fields[2]!r} is not a revocation reason; write {form}.")
        if any(e.serial == serial for e in entries):
            raise PkiError(
                f"{where}: serial {serial_hex(serial)} is listed twice; keep one of the lines."
            )
        entries.append(Revoked(serial, when, REVOKE_REASONS[fields[2]], note.strip()))
    return entries


def issued_cert(ca: CA, serial: int) -> x509.Certificate | None:
    """The certificate with this serial that ``ca`` issued, from its ``issued/``
    copies, or None."""
    cert = _read_cert(ca.directory / ISSUED_DIR / f"{serial_hex(serial)}.crt")
    if cert is None or cert.serial_number != serial or not _issued_by(cert, ca.cert):
        return None
    return cert


def revoke(ca: CA, serial: str | int, reason: str, *, now: datetime | None = None) -> Revocation:
    """Revoke the certificate with this serial (hex if a string): add it to
    ``revoked.txt`` and sign a new CRL.

    Refuses a malformed serial, an unknown reason, and a serial the CA did not
    issue (no copy in ``issued/``), before anything is written. Revoking a
    certificate that is already revoked keeps its first entry (the CRL is
    only refreshed, if `refresh_crl` finds it has to be).
    """
    number = parse_serial(serial) if isinstance(serial, str) else serial
    if not isinstance(number, int) or number <= 0:
        raise PkiError(f"{serial!r} is not a certificate serial number (a positive integer).")
    if reason not in REVOKE_REASONS:
        raise PkiError(
            f"{reason!r} is not a revocation reason; use one of {', '.join(REVOKE_REASONS)} "
            "(RFC 5280 §5.3.1; key_compromise if the private key may have leaked)."
        )
    now = _utc(now)
    entries = read_revoked(ca)
    cert = issued_cert(ca, number)
    if cert is None:
        raise PkiError(
            f"serial {serial_hex(number)} is not a certificate this CA issued: there is no "
            f"{ca.directory / ISSUED_DIR / serial_hex(number)}.crt. Check the serial with "
            f"`openssl x509 -noout -serial -in FILE`; `ls {ca.directory / ISSUED_DIR}` lists "
            "the serials this CA knows. Nothing was changed."
        )
    for entry in entries:
        if entry.serial == number:
            return Revocation(entry, cert, changed=False, crl=refresh_crl(ca, now=now))
    dns, ips = _cert_names(cert)
    entry = Revoked(number, now, REVOKE_REASONS[reason], ", ".join([*dns, *map(str, ips)]))
    _append_revoked(ca.directory / REVOKED_LIST, entry)
    return Revocation(entry, cert, changed=True, crl=refresh_crl(ca, now=now))


def load_crl(path: Path) -> x509.CertificateRevocationList:
    """A DER CRL (the form ``ca.crl`` is written in)."""
    data = _read(Path(path), "CRL")
    try:
        return x509.load_der_x509_crl(data)
    except ValueError:
        raise PkiError(
            f"{path} is not a DER CRL. Check it with `openssl crl -inform DER -noout -text "
            f"-in {path}`."
        ) from None


def build_crl(
    ca: CA,
    revoked: Iterable[Revoked],
    number: int,
    *,
    days: int = CRL_DAYS,
    now: datetime | None = None,
) -> x509.CertificateRevocationList:
    """A CRL signed by ``ca`` listing ``revoked``, with CRL Number ``number``."""
    _check_days(days)
    now = _utc(now)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.cert.subject)
        # Backdated like the certificates, for hosts whose clocks run behind.
        .last_update(now - BACKDATE)
        .next_update(now + days * _DAY)
        .add_extension(x509.CRLNumber(number), critical=False)
        .add_extension(_authority_key_id(ca), critical=False)
    )
    for entry in sorted(revoked, key=lambda e: e.serial):
        revoked_cert = (
            x509.RevokedCertificateBuilder()
            .serial_number(entry.serial)
            .revocation_date(entry.revoked_at)
        )
        if entry.reason != x509.ReasonFlags.unspecified:
            revoked_cert = revoked_cert.add_extension(x509.CRLReason(entry.reason), critical=False)
        builder = builder.add_revoked_certificate(revoked_cert.build())
    return builder.sign(ca.key, hashes.SHA256())


def refresh_crl(
    ca: CA,
    *,
    days: int = CRL_DAYS,
    refresh_days: int = CRL_REFRESH_DAYS,
    now: datetime | None = None,
) -> CrlFile:
    """Make sure the CA's ``ca.crl`` is a CRL from ``ca`` that lists exactly
    ``revoked.txt`` and is valid for at least ``refresh_days`` more days.

    Otherwise (or if it is missing or unreadable) a new one, valid ``days``,
    is signed and written (0644, atomic rename). When it is fine nothing is
    written, so a second run changes nothing.
    """
    _check_days(days)
    now = _utc(now)
    path = ca.directory / CA_CRL
    revoked = read_revoked(ca)
    current: x509.CertificateRevocationList | None = None
    if path.exists():
        try:
            current = x509.load_der_x509_crl(path.read_bytes())
        except (ValueError, OSError):
            current = None
    why = _why_resign(ca, path, current, revoked, refresh_days, now)
    if why is None:
        assert current is not None
        return CrlFile(path, current, changed=False, reason="up to date")
    previous = 0
    if current is not None:
        with contextlib.suppress(x509.ExtensionNotFound):
            previous = current.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    # The Unix time always grows, so the number does too even if ca.crl was lost.
    number = max(previous + 1, int(now.timestamp()))
    crl = build_crl(ca, revoked, number, days=days, now=now)
    _write_file(path, crl.public_bytes(serialization.Encoding.DER), CERT_MODE)
    return CrlFile(path, crl, changed=True, reason=why)


def _why_resign(
    ca: CA,
    path: Path,
    crl: x509.CertificateRevocationList | None,
    revoked: Sequence[Revoked],
    refresh_days: int,
    now: datetime,
) -> str | None:
    """Why the CRL must be signed again, or None if it is fine."""
    if not path.exists():
        return "no CRL yet"
    if crl is None:
        return f"{path.name} cannot be read"
    if not _crl_signed_by(crl, ca.cert):
        return f"{path.name} was not signed by the CA in {ca.cert_path}"
    have = {(r.serial_number, r.revocation_date_utc, _crl_reason(r)) for r in crl}
    want = {(e.serial, e.revoked_at, e.reason) for e in revoked}
    if have != want:
        added = len({w[0] for w in want} - {h[0] for h in have})
        return (
            f"{REVOKED_LIST} changed ({added} newly revoked)" if added
            else f"{path.name} does not list what {REVOKED_LIST} lists"
        )
    if crl.last_update_utc > now:
        return f"{path.name} is not valid yet (check the controller's clock)"
    next_update = crl.next_update_utc
    if next_update is None:
        return f"{path.name} has no next update"
    if next_update <= now:
        return f"{path.name} expired on {_when(next_update)}"
    if next_update - now < refresh_days * _DAY:
        return f"{path.name}'s next update is in {_days((next_update - now) // _DAY)}"
    return None


def _crl_signed_by(crl: x509.CertificateRevocationList, issuer: x509.Certificate) -> bool:
    if crl.issuer != issuer.subject:
        return False
    try:
        return crl.is_signature_valid(issuer.public_key())  # type: ignore[arg-type]
    except (ValueError, TypeError, UnsupportedAlgorithm):
        return False


def _crl_reason(revoked: x509.RevokedCertificate) -> x509.ReasonFlags:
    try:
        return revoked.extensions.get_extension_for_class(x509.CRLReason).value.reason
    except x509.ExtensionNotFound:
        return x509.ReasonFlags.unspecified


_REVOKED_HEADER = """\
# Certificates revoked by this CA (hopthu/pki.py; add with `hopthu pki revoke`).
# One per line: SERIAL (hex, as `openssl x509 -noout -serial` prints it), the time
# of revocation (UTC), the reason (RFC 5280 §5.3.1), then '#' and the names.
"""


def _append_revoked(path: Path, entry: Revoked) -> None:
    """Add a line to ``revoked.txt`` (a new file starts with a header that
    explains the format); the lines already there, comments included, stay as
    they are. The whole file is replaced by an atomic rename."""
    text = path.read_text(encoding="utf-8") if path.exists() else _REVOKED_HEADER
    if text and not text.endswith("\n"):
        text += "\n"
    line = f"{serial_hex(entry.serial)} {entry.revoked_at.strftime(_REVOKED_TIME)} {entry.reason.name}"
    text += f"{line}  # {entry.note}\n" if entry.note else f"{line}\n"
    _write_file(path, text.encode("utf-8"), CERT_MODE)


def _record_issued(ca: CA, cert: x509.Certificate) -> None:
    """Keep a copy of a certificate ``ca`` issued, once, under ``issued/``."""
    directory = ca.directory / ISSUED_DIR
    path = directory / f"{serial_hex(cert.serial_number)}.crt"
    if path.exists():
        return
    directory.mkdir(mode=0o700, exist_ok=True)
    _write_file(path, _pem(cert), CERT_MODE)


# -- Checks for operator-supplied certificates -------------------------------


def check_pair(
    cert_path: Path,
    key_path: Path,
    *,
    passphrase: bytes | None = None,
    now: datetime | None = None,
) -> None:
    """Check that a certificate and its key can be served: both readable PEM,
    the key is the certificate's, the key is strong enough for OpenSSL 3, and
    the certificate is valid now (neither expired nor not yet valid)."""
    cert_path, key_path = Path(cert_path), Path(key_path)
    cert = _load_certs(cert_path, "certificate")[0]
    key = _load_key(key_path, "private key", passphrase)
    _check_key_matches(cert, cert_path, key, key_path)
    if isinstance(key, rsa.RSAPrivateKey) and key.key_size < RSA_MIN_BITS:
        raise PkiError(
            f"{key_path} is a {key.key_size}-bit RSA key: OpenSSL 3 on Debian refuses RSA keys "
            f"under {RSA_MIN_BITS} bits. Get a new certificate with an RSA {RSA_BITS} or ECDSA "
            "P-256 key."
        )
    if isinstance(cert.signature_hash_algorithm, hashes.SHA1 | hashes.MD5):
        raise PkiError(
            f"{cert_path} is signed with {cert.signature_hash_algorithm.name.upper()}, which "
            "OpenSSL 3 and mail clients refuse: ask the CA to issue it again with SHA-256."
        )
    _check_validity(cert, cert_path, _utc(now), "certificate")


def check_chain(cert_path: Path, ca_path: Path) -> None:
    """Check that the certificate in ``cert_path`` was issued by a CA in
    ``ca_path``, directly or through intermediates that follow it in
    ``cert_path`` (as served: the host certificate first)."""
    cert_path, ca_path = Path(cert_path), Path(ca_path)
    certs = _load_certs(cert_path, "certificate")
    anchors = _load_certs(ca_path, "CA certificate")
    intermediates = certs[1:]
    current = certs[0]
    for _ in range(len(certs)):
        if any(_issued_by(current, anchor) for anchor in anchors):
            return
        parent = next(
            (c for c in intermediates if c is not current and _issued_by(current, c)), None
        )
        if parent is None:
            break
        current = parent

    issuer = current.issuer.rfc4514_string()
    same_name = [a for a in anchors if a.subject == current.issuer]
    if same_name:
        raise PkiError(
            f"{cert_path} names {issuer} as its issuer, like the CA in {ca_path}, but the "
            "signature does not verify with that CA's key: it comes from another CA with the "
            f"same name. Give that CA's certificate, or a certificate issued by the CA in {ca_path}."
        )
    have = "; ".join(a.subject.rfc4514_string() for a in anchors)
    raise PkiError(
        f"{cert_path} was not issued by the CA in {ca_path}: its issuer is {issuer!r}, the CA is "
        f"{have!r}. Give the CA that issued it. If an intermediate CA issued it, append the "
        f"intermediate's certificate to {cert_path}, after the host certificate."
    )


def check_names(cert_path: Path, names: Iterable[str]) -> None:
    """Check that the certificate's subjectAltNames cover every name in
    ``names`` (DNS names or IP addresses), with RFC 6125 wildcard rules: ``*``
    is a whole leftmost label and matches exactly one label."""
    cert_path = Path(cert_path)
    cert = _load_certs(cert_path, "certificate")[0]
    try:
        cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        raise PkiError(
            f"{cert_path} has no subjectAltName: mail clients ignore the CN (RFC 6125 §6.4.4). "
            "Get a certificate that lists the host names as subjectAltNames."
        ) from None
    have_dns, have_ips = _cert_names(cert)
    missing = []
    for wanted in names:
        ip = _maybe_ip(wanted)
        if ip is not None:
            covered = ip in have_ips
        else:
            name = _dns_name(wanted)
            covered = any(_name_matches(pattern, name) for pattern in have_dns)
        if not covered:
            missing.append(wanted)
    if missing:
        have = ", ".join([*have_dns, *map(str, have_ips)]) or "nothing"
        raise PkiError(
            f"{cert_path} does not cover {', '.join(missing)} (it covers {have}). Get a "
            "certificate that lists every name clients use for this host, or correct the names."
        )


def days_left(cert_path: Path, *, now: datetime | None = None) -> int:
    """Whole days until the certificate expires, rounded down; negative once it
    has expired."""
    cert = _load_certs(Path(cert_path), "certificate")[0]
    return (cert.not_valid_after_utc - _utc(now)) // _DAY


def expiry_warning(
    cert_path: Path, warn_days: int = WARN_DAYS, *, now: datetime | None = None
) -> str | None:
    """A message for the infra suite if the certificate expires within
    ``warn_days`` days (or has expired), else None."""
    cert_path = Path(cert_path)
    cert = _load_certs(cert_path, "certificate")[0]
    left = (cert.not_valid_after_utc - _utc(now)) // _DAY
    if left > warn_days:
        return None
    on = _when(cert.not_valid_after_utc)
    todo = (
        "A certificate from hopthu's internal CA is renewed by the next deploy; replace a "
        "certificate you supplied with a renewed one, then deploy."
    )
    if cert.not_valid_after_utc <= _utc(now):
        return f"{cert_path} expired on {on} and clients refuse it: renew it now. {todo}"
    return f"{cert_path} expires in {_days(left)} (on {on}): renew it. {todo}"


# -- Helpers -----------------------------------------------------------------


def _utc(now: datetime | None) -> datetime:
    if now is None:
        now = datetime.now(UTC)
    elif now.tzinfo is None:
        raise ValueError("now must be a timezone-aware datetime")
    # X.509 times have whole seconds: keep `now` comparable with them.
    return now.astimezone(UTC).replace(microsecond=0)


def _when(t: datetime) -> str:
    return t.strftime("%Y-%m-%d %H:%M UTC")


def _days(n: int) -> str:
    return "1 day" if n == 1 else f"{n} days"


def _check_days(days: int) -> None:
    if not isinstance(days, int) or days < 1:
        raise PkiError(f"validity must be a whole number of days, at least 1; got {days!r}.")


def _new_key(key_type: KeyType) -> PrivateKey:
    if key_type == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
    raise PkiError(
        f"key_type must be 'ec' (ECDSA P-256) or 'rsa' (RSA {RSA_BITS}); got {key_type!r}."
    )


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _spki(public_key: PublicKeyTypes) -> bytes:
    """The public key as DER SubjectPublicKeyInfo: equal bytes, same key."""
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """True if ``issuer``'s name and key issued ``cert`` (names match and the
    signature verifies)."""
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def _dns_name(raw: str) -> str:
    """A DNS name as certificates carry it: lower case, no trailing dot, IDN
    labels as A-labels (``xn--``)."""
    if not isinstance(raw, str):
        raise PkiError(f"a DNS name must be a string; got {raw!r}.")
    name = raw.strip().rstrip(".").lower()
    if not name.isascii():
        # Vietnamese domain names: the stdlib codec (IDNA 2003) gives the same
        # A-labels as IDNA 2008 for Vietnamese letters in NFC.
        try:
            name = name.encode("idna").decode("ascii")
        except UnicodeError:
            raise PkiError(
                f"{raw!r} is not a valid internationalised domain name: write it as its A-label "
                "(xn--...)."
            ) from None
    labels = name.split(".")
    ok = len(name) <= 253 and all(
        _LABEL.fullmatch(label) or (i == 0 and label == "*" and len(labels) >= 3)
        for i, label in enumerate(labels)
    )
    if not ok:
        raise PkiError(
            f"{raw!r} is not a valid host name for a certificate: use letters, digits and hyphens "
            "in dot-separated labels (e.g. mail.example.org), optionally '*.' as the whole first "
            "label of a name with at least three labels."
        )
    return name


def _dns_names(names: Sequence[str]) -> list[str]:
    if isinstance(names, str):
        raise PkiError(f"names must be a list of host names, not the string {names!r}.")
    out: list[str] = []
    for raw in names:
        name = _dns_name(raw)
        if name not in out:
            out.append(name)
    return out


def _maybe_ip(value: str | IPAddress) -> IPAddress | None:
    if isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address):
        return value
    try:
        return ipaddress.ip_address(str(value).strip())
    except ValueError:
        return None


def _ip_addresses(values: Iterable[str | IPAddress]) -> list[IPAddress]:
    if isinstance(values, str):
        raise PkiError(f"ip_addresses must be a list, not the string {values!r}.")
    out: list[IPAddress] = []
    for value in values:
        ip = _maybe_ip(value)
        if ip is None:
            raise PkiError(f"{value!r} is not an IP address (e.g. 198.18.0.10 or 2001:db8::10).")
        if ip not in out:
            out.append(ip)
    return out


def _cert_names(cert: x509.Certificate) -> tuple[list[str], list[IPAddress]]:
    """The certificate's SAN DNS names (normalised, in order) and IPs."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return [], []
    dns = [n.lower().rstrip(".") for n in san.get_values_for_type(x509.DNSName)]
    return dns, list(san.get_values_for_type(x509.IPAddress))


def _name_matches(pattern: str, name: str) -> bool:
    """RFC 6125 §6.4.3: a '*' that is the whole leftmost label matches exactly
    one label, never the parent name itself, and only below two more labels
    (so '*.org' matches nothing). Partial wildcards ('m*.example.org') are not
    honoured, as the CA/B Baseline Requirements forbid them."""
    if pattern == name:
        return True
    p_labels, n_labels = pattern.split("."), name.split(".")
    return (
        p_labels[0] == "*"
        and len(p_labels) >= 3
        and len(n_labels) == len(p_labels)
        and n_labels[0] != "*"
        and n_labels[1:] == p_labels[1:]
    )


def _crl_distribution_points(url: str) -> x509.CRLDistributionPoints:
    return x509.CRLDistributionPoints(
        [
            x509.DistributionPoint(
                full_name=[x509.UniformResourceIdentifier(url)],
                relative_name=None,
                reasons=None,
                crl_issuer=None,
            )
        ]
    )


def _crl_urls(cert: x509.Certificate) -> list[str]:
    """The URIs of the certificate's CRL distribution points, in order."""
    try:
        points = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    except x509.ExtensionNotFound:
        return []
    return [
        name.value
        for point in points
        for name in (point.full_name or [])
        if isinstance(name, x509.UniformResourceIdentifier)
    ]


def _authority_key_id(ca: CA) -> x509.AuthorityKeyIdentifier:
    """The AuthorityKeyIdentifier for what ``ca`` signs: its SKI, so clients find
    the right key (RFC 5280 §4.2.1.1, §5.2.1)."""
    try:
        ca_ski = ca.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski)
    except x509.ExtensionNotFound:
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key())


def _read_cert(path: Path) -> x509.Certificate | None:
    """The first certificate of a PEM file, or None if it is missing or unreadable."""
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError):
        return None


def _host_paths(directory: Path, name: str) -> tuple[Path, Path, Path]:
    if not _FILE_NAME.fullmatch(name):
        raise PkiError(
            f"{name!r} cannot name certificate files: use letters, digits, '.', '-' and '_', "
            "starting with a letter or digit (e.g. the host's inventory name)."
        )
    return directory / f"{name}.key", directory / f"{name}.crt", directory / f"{name}.fullchain.pem"


def _write_file(path: Path, data: bytes, mode: int, *, exclusive: bool = False) -> None:
    """Write ``data`` to ``path`` with ``mode`` through a temporary file in the
    same directory, so readers see the old file or the new one, never a part.
    The temporary file is created 0600, so a key is never readable by others,
    not even for a moment. ``exclusive`` refuses to replace an existing file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        # chmod, unlike open(), is not reduced by the umask.
        os.chmod(tmp, mode)
        if exclusive:
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise PkiError(
                    f"{path} appeared while it was being created: refusing to overwrite it."
                ) from None
            os.unlink(tmp)
        else:
            os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise PkiError(
            f"{path}: no such file. Check the {what} path in the settings, or copy the {what} there."
        ) from None
    except IsADirectoryError:
        raise PkiError(f"{path} is a directory: give the path of the {what} file itself.") from None
    except PermissionError:
        raise PkiError(
            f"{path}: permission denied. Make the {what} readable by the user running the deploy "
            f"(uid {os.getuid()})."
        ) from None
    except OSError as e:
        raise PkiError(f"{path}: cannot read the {what}: {e.strerror}.") from None


def _load_certs(path: Path, what: str) -> list[x509.Certificate]:
    """The certificates in a PEM file, first one first."""
    data = _read(path, what)
    if b"PRIVATE KEY-----" in data:
        if b"-----BEGIN CERTIFICATE-----" not in data:
            raise PkiError(
                f"{path} holds a private key, not a {what}: are the certificate and key paths "
                "swapped?"
            )
        raise PkiError(
            f"{path} holds a private key as well as the {what}. Certificate files are "
            "world-readable (0644), so keep the key in its own file (mode 0600) and give its path "
            "as the key."
        )
    if b"-----BEGIN" not in data and _is_der_certificate(data):
        raise PkiError(
            f"{path} is a DER (binary) {what}; PEM is needed. Convert it with "
            f"`openssl x509 -inform der -in {path} -out {path.with_suffix('.pem')}`."
        )
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError:
        raise PkiError(
            f"{path} is not a PEM {what}: expected a '-----BEGIN CERTIFICATE-----' block. Check "
            f"the file with `openssl x509 -noout -text -in {path}`."
        ) from None


def _is_der_certificate(data: bytes) -> bool:
    try:
        x509.load_der_x509_certificate(data)
    except ValueError:
        return False
    return True


def _load_key(path: Path, what: str, passphrase: bytes | None) -> PrivateKeyTypes:
    """Load a PEM private key, explaining the usual mistakes."""
    data = _read(path, what)
    if b"PRIVATE KEY-----" not in data and b"-----BEGIN CERTIFICATE-----" in data:
        raise PkiError(
            f"{path} holds a certificate, not a {what}: are the certificate and key paths swapped?"
        )
    try:
        return serialization.load_pem_private_key(data, passphrase)
    except TypeError:
        if passphrase is None:
            raise PkiError(
                f"{path} is encrypted with a passphrase and none was given. Postfix, Dovecot and "
                "nginx read host keys at start-up without a prompt, so store a host key "
                f"unencrypted (mode 0600, in the vault): `openssl pkey -in {path} -out NEW_FILE`. "
                "For a CA key, give its passphrase."
            ) from None
        # A passphrase was given for a key that is not encrypted: not an error.
        return _load_key(path, what, None)
    except ValueError:
        if passphrase is not None and b"ENCRYPTED" in data:
            raise PkiError(f"{path}: the passphrase given does not decrypt this {what}.") from None
        raise PkiError(
            f"{path} is not a PEM {what}: expected a '-----BEGIN PRIVATE KEY-----' block. Check "
            f"the file with `openssl pkey -noout -in {path}`."
        ) from None
    except UnsupportedAlgorithm:
        raise PkiError(f"{path}: this kind of {what} is not supported; use ECDSA or RSA.") from None


def _check_key_matches(
    cert: x509.Certificate, cert_path: Path, key: PrivateKeyTypes, key_path: Path
) -> None:
    if _spki(cert.public_key()) != _spki(key.public_key()):
        raise PkiError(
            f"{key_path} is not the private key of {cert_path}: their public keys differ. Give "
            "the key the certificate was requested with (compare "
            f"`openssl x509 -noout -pubkey -in {cert_path}` with "
            f"`openssl pkey -pubout -in {key_path}`)."
        )


def _check_validity(cert: x509.Certificate, path: Path, now: datetime, what: str) -> None:
    if cert.not_valid_after_utc <= now:
        raise PkiError(
            f"{path}: this {what} expired on {_when(cert.not_valid_after_utc)}. Renew it and "
            "give the new file."
        )
    if cert.not_valid_before_utc > now:
        raise PkiError(
            f"{path}: this {what} is not valid before {_when(cert.not_valid_before_utc)}, and "
            f"it is {_when(now)} here. Check this machine's clock (NTP), or wait."
        )
