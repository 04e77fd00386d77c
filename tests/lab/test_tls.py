"""The mail services speak only TLS 1.2 or later, with strong ciphers (Art. 11.5).

Every TLS port of every mail_mx host (SMTP 25 and submission 587 with
STARTTLS, submissions 465) and mail_store host (IMAPS 993, POP3S 995) is
checked from the controller, an internal-zone client (LAB.md: never from
loopback), in two independent ways:

1. testssl (tests/lab/tlsscan.py), with the lab CA: no HIGH or CRITICAL
   finding other than the documented exceptions (tlsscan.KNOWN_FINDINGS),
   no protocol below TLS 1.2, no weak cipher category, only the cipher
   suites of Mozilla's intermediate profile, a chain of trust to the lab CA.
   Its raw JSON stays in reports/lab/testssl/ as evidence.
2. Python's ssl module, a client as strict as a good MTA or mail client:
   the chain validates against the lab CA alone for the host's public name;
   a TLS 1.0 or 1.1 handshake is refused by the server (the client is made
   to offer it honestly, at OpenSSL security level 0); a TLS 1.2 handshake
   that offers only a weak cipher class is refused, while one with a strong
   cipher succeeds, so the refusals are about the weakness.

The testssl scans run once per module, two at a time: about 40 s per port,
under 4 minutes for the lab's two mail hosts (ten ports) on 2 cores.
"""

from __future__ import annotations

import contextlib
import shutil
import smtplib
import socket
import ssl
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import tlsscan
from tlsscan import Endpoint, Scan

pytestmark = [pytest.mark.lab, pytest.mark.control("ART11-5-TLS")]

#: Every TLS port of the lab's mail hosts (the inventory's mail_mx and mail_store).
ENDPOINTS = tlsscan.endpoints("lab")
#: Seconds one connection, STARTTLS exchange or handshake may take.
TIMEOUT = 30.0
#: The client's own refusals: if OpenSSL on the controller would not even
#: offer what a test asks for, the server was never asked and the test proved nothing.
CLIENT_SIDE_REASONS = frozenset({"NO_PROTOCOLS_AVAILABLE", "NO_CIPHERS_AVAILABLE",
                                 "NO_CIPHER_MATCH"})
#: Cipher classes a TLS 1.2 client may offer and the server must refuse
#: (OpenSSL names). Each holds the ECDSA and the RSA variant, so the test
#: holds whichever key type pki__key_type gives the host. (With the lab's
#: ECDSA certificates static RSA key exchange cannot be negotiated anyway; it
#: matters with pki__key_type rsa. 3DES is not in the controller's OpenSSL 3
#: at all; testssl checks it with raw sockets.)
WEAK_TLS12_CIPHERS = {
    "cbc-sha1": "ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA:"
                "ECDHE-ECDSA-AES256-SHA:ECDHE-RSA-AES256-SHA",
    "cbc-sha2": "ECDHE-ECDSA-AES128-SHA256:ECDHE-RSA-AES128-SHA256:"
                "ECDHE-ECDSA-AES256-SHA384:ECDHE-RSA-AES256-SHA384",
    "rsa-key-exchange": "AES128-GCM-SHA256:AES256-GCM-SHA384:AES128-SHA:AES256-SHA",
    "null-or-anonymous": "aNULL:eNULL",
}
#: A strong TLS 1.2 cipher of Mozilla's intermediate profile, in both key types.
STRONG_TLS12_CIPHERS = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256"


def _ids(endpoint: Endpoint) -> str:
    return endpoint.label


@pytest.fixture(scope="module")
def ca_file(converged_lab: dict[str, str]) -> Path:
    """The lab CA on the controller (pki__ca_dir/ca.crt): the only trust anchor here."""
    from hopthu.settings import load_host

    path = Path(load_host("lab", ENDPOINTS[0].host).values["pki__ca_dir"]) / "ca.crt"
    if not path.is_file():
        pytest.fail(f"no lab CA at {path}: the pki role creates it on the first deploy; "
                    f"run `hopthu deploy --inventory lab`")
    return path


@pytest.fixture(scope="module")
def scans(ca_file: Path) -> dict[Endpoint, Scan]:
    """One testssl scan of every endpoint, two at a time."""
    if shutil.which(tlsscan.TESTSSL) is None:
        pytest.fail("testssl is not installed on the controller: "
                    "apt-get install -y testssl.sh socat")
    if shutil.which("socat") is None:
        pytest.fail("socat is missing (testssl's STARTTLS-injection check needs it): "
                    "apt-get install -y socat")
    return tlsscan.scan_all(ENDPOINTS, ca_file)


def usable(scans: dict[Endpoint, Scan], endpoint: Endpoint) -> Scan:
    """The endpoint's scan; fails the test if testssl could not do its job."""
    result = scans[endpoint]
    assert not result.error, (
        f"{endpoint.label}: {result.error}. See {result.log_file}; check that the service "
        f"listens (`ss -ltn` on {endpoint.host}) and that the controller reaches it."
    )
    broken = "; ".join(str(f) for f in result.broken())
    assert not broken, (f"{endpoint.label}: testssl could not finish: {broken}. "
                        f"See {result.log_file}.")
    missing = tlsscan.missing_ids(result)
    assert not missing, (
        f"{endpoint.label}: testssl {result.version} reported no {', '.join(missing)}: "
        f"the scan did not cover protocols, ciphers, certificate and vulnerabilities. "
        f"See {result.json_file}; has testssl renamed its ids?"
    )
    return result


# --- testssl ---------------------------------------------------------------------------


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=_ids)
def test_testssl_finds_nothing_high_or_critical(scans: dict[Endpoint, Scan],
                                                endpoint: Endpoint) -> None:
    result = usable(scans, endpoint)
    failing = result.failing()
    assert not failing, (
        f"{endpoint.label} ({endpoint.name}): testssl {result.version} found "
        + "; ".join(f"{f.id} [{f.severity}] in {f.section}: {f.text!r}" for f in failing)
        + f". Fix the TLS settings of the service on port {endpoint.port} (roles/postfix, "
        f"roles/dovecot) or the certificate (roles/pki, hopthu/pki.py). If, after review, "
        f"the finding is a false alarm of this testssl version, add it with its reason to "
        f"tlsscan.KNOWN_FINDINGS and LAB.md. Raw findings: {result.json_file}"
    )


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=_ids)
def test_testssl_sees_no_protocol_below_tls_1_2(scans: dict[Endpoint, Scan],
                                                endpoint: Endpoint) -> None:
    result = usable(scans, endpoint)
    offered = [f"{f.id}: {f.text!r}" for proto in tlsscan.OLD_PROTOCOLS
               for f in result.by_id(proto) if not f.text.startswith("not offered")]
    assert not offered, (
        f"{endpoint.label}: testssl sees {'; '.join(offered)}. Only TLS 1.2 and 1.3 may be "
        f"offered: set smtpd_tls_protocols/smtpd_tls_mandatory_protocols = >=TLSv1.2 "
        f"(Postfix) or ssl_min_protocol = TLSv1.2 (Dovecot). Evidence: {result.json_file}"
    )
    modern = [f for proto in ("TLS1_2", "TLS1_3") for f in result.by_id(proto)
              if f.text.startswith("offered")]
    assert modern, f"{endpoint.label}: neither TLS 1.2 nor TLS 1.3 is offered ({result.json_file})"


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=_ids)
def test_testssl_sees_only_strong_ciphers(scans: dict[Endpoint, Scan],
                                          endpoint: Endpoint) -> None:
    result = usable(scans, endpoint)
    weak = [f"{f.id}: {f.text!r}" for f in tlsscan.weak_categories(result)
            if not f.text.startswith("not offered")]
    assert not weak, (
        f"{endpoint.label}: weak cipher categories offered: {'; '.join(weak)}. Limit the "
        f"service to Mozilla's intermediate cipher list (tls_medium_cipherlist with "
        f"smtpd_tls_mandatory_ciphers = medium; Dovecot ssl_cipher_list). "
        f"Evidence: {result.json_file}"
    )
    accepted = tlsscan.accepted_ciphers(result)
    assert accepted, f"{endpoint.label}: testssl listed no accepted cipher ({result.json_file})"
    outside = sorted(set(accepted) - tlsscan.STRONG_CIPHERS)
    assert not outside, (
        f"{endpoint.label}: the server accepts {', '.join(outside)}, which is not in Mozilla's "
        f"intermediate profile (tlsscan.STRONG_CIPHERS). Remove it from the service's "
        f"cipher list. Evidence: {result.json_file}"
    )


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=_ids)
def test_testssl_trusts_the_chain_for_the_public_name(scans: dict[Endpoint, Scan],
                                                      endpoint: Endpoint) -> None:
    result = usable(scans, endpoint)
    bad = [str(f) for f in result.by_id("cert_chain_of_trust") + result.by_id("cert_trust")
           if f.severity != "OK"]
    assert not bad, (
        f"{endpoint.label}: testssl, with the lab CA added, does not trust the certificate "
        f"for {endpoint.name}: {'; '.join(bad)}. Check that the host serves "
        f"/etc/hopthu/tls/host.fullchain.pem issued for its pki__cert_names "
        f"(roles/pki). Evidence: {result.json_file}"
    )


# --- Python's ssl module -----------------------------------------------------------------


class _SMTPByAddress(smtplib.SMTP):
    """smtplib.SMTP that connects to the lab address but uses the public name for TLS.

    smtplib's STARTTLS takes the TLS server name (SNI and the hostname check)
    from the host given to its constructor; the controller cannot resolve
    the public name, so the socket goes to the address and the name stays
    the public one.
    """

    def __init__(self, address: str, name: str, timeout: float) -> None:
        self._address = address
        super().__init__(timeout=timeout)  # no host: connect() comes later
        self._host = name

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        return socket.create_connection((self._address, port), timeout)


@contextlib.contextmanager
def tls_session(endpoint: Endpoint, context: ssl.SSLContext) -> Iterator[ssl.SSLSocket]:
    """A TLS session with the endpoint: implicit TLS, or SMTP STARTTLS through smtplib."""
    if endpoint.starttls == "smtp":
        client = _SMTPByAddress(endpoint.address, endpoint.name, TIMEOUT)
        try:
            client.connect(endpoint.name, endpoint.port)
            client.ehlo("controller.lab.test")
            client.starttls(context=context)
            assert isinstance(client.sock, ssl.SSLSocket)
            yield client.sock
            client.ehlo("controller.lab.test")
        finally:
            with contextlib.suppress(smtplib.SMTPException, OSError):
                client.quit()
            client.close()
    else:
        with (socket.create_connection((endpoint.address, endpoint.port), TIMEOUT) as raw,
              context.wrap_socket(raw, server_hostname=endpoint.name) as tls):
            yield tls


def probe_context(version: ssl.TLSVersion, ciphers: str = "DEFAULT") -> ssl.SSLContext:
    """A client that offers exactly `version` and `ciphers`, at OpenSSL security level 0.

    Level 0 lets the controller's OpenSSL really send an old or weak offer
    (at its default level it would refuse TLS 1.0/1.1 and SHA-1 by itself).
    It does not verify the certificate: these probes ask about protocol and
    cipher, the trust check is its own test.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TLSv1 / TLSv1_1 are deprecated
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        context.set_ciphers(f"{ciphers}:@SECLEVEL=0")
        context.minimum_version = version
        context.maximum_version = version
    return context


def refusal(endpoint: Endpoint, context: ssl.SSLContext) -> str:
    """How the server refused the handshake; fails the test if it was accepted."""
    try:
        with tls_session(endpoint, context) as tls:
            cipher = tls.cipher()
            accepted = f"{tls.version()} with {cipher[0] if cipher else 'an unknown cipher'}"
    except ssl.SSLError as exc:
        assert exc.reason not in CLIENT_SIDE_REASONS, (
            f"{endpoint.label}: the controller's OpenSSL would not send this offer "
            f"({exc.reason}), so the server was never asked. Check the client's cipher "
            f"string and security level."
        )
        return str(exc.reason or exc)
    except (ConnectionResetError, smtplib.SMTPServerDisconnected) as exc:
        return f"connection closed by the server ({exc.__class__.__name__})"
    return f"ACCEPTED: {accepted}"


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=_ids)
def test_certificate_chain_validates_against_the_lab_ca(ca_file: Path,
                                                        endpoint: Endpoint) -> None:
    context = ssl.create_default_context(cafile=str(ca_file))  # the lab CA alone
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    assert context.check_hostname and context.verify_mode == ssl.CERT_REQUIRED
    try:
        with tls_session(endpoint, context) as tls:
            version = tls.version()
            names = [v for k, v in (tls.getpeercert() or {}).get("subjectAltName", ())
                     if k == "DNS"]
    except ssl.SSLCertVerificationError as exc:
        pytest.fail(
            f"{endpoint.label}: the certificate does not validate against the lab CA "
            f"({ca_file}) for {endpoint.name}: {exc.verify_message}. The host must serve "
            f"the chain the pki role issued for its pki__cert_names; redeploy roles/pki."
        )
    assert endpoint.name in names, f"{endpoint.label}: {endpoint.name} not in the SANs {names}"
    assert version in ("TLSv1.2", "TLSv1.3"), f"{endpoint.label}: negotiated {version}"


@pytest.mark.parametrize("version", ["TLSv1", "TLSv1_1"])
@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=_ids)
def test_server_refuses_tls_below_1_2(converged_lab: dict[str, str], endpoint: Endpoint,
                                      version: str) -> None:
    outcome = refusal(endpoint, probe_context(ssl.TLSVersion[version]))
    assert not outcome.startswith("ACCEPTED"), (
        f"{endpoint.label}: a {version} handshake succeeded ({outcome}). Allow only TLS 1.2 "
        f"and later on port {endpoint.port}: Postfix smtpd_tls_protocols and "
        f"smtpd_tls_mandatory_protocols = >=TLSv1.2, Dovecot ssl_min_protocol = TLSv1.2."
    )


@pytest.mark.parametrize("cipher_class", sorted(WEAK_TLS12_CIPHERS))
@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=_ids)
def test_server_refuses_tls_1_2_with_a_weak_cipher(converged_lab: dict[str, str],
                                                   endpoint: Endpoint, cipher_class: str) -> None:
    ciphers = WEAK_TLS12_CIPHERS[cipher_class]
    outcome = refusal(endpoint, probe_context(ssl.TLSVersion.TLSv1_2, ciphers))
    assert not outcome.startswith("ACCEPTED"), (
        f"{endpoint.label}: TLS 1.2 with only {cipher_class} ciphers ({ciphers}) succeeded: "
        f"{outcome}. Restrict the service to Mozilla's intermediate ciphers "
        f"(Postfix smtpd_tls_mandatory_ciphers = medium with tls_medium_cipherlist and "
        f"smtpd_tls_ciphers; Dovecot ssl_cipher_list)."
    )


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=_ids)
def test_server_accepts_tls_1_2_with_a_strong_cipher(converged_lab: dict[str, str],
                                                     endpoint: Endpoint) -> None:
    """The control for the refusals above: TLS 1.2 itself works."""
    context = probe_context(ssl.TLSVersion.TLSv1_2, STRONG_TLS12_CIPHERS)
    try:
        with tls_session(endpoint, context) as tls:
            version, cipher = tls.version(), tls.cipher()
    except (ssl.SSLError, OSError, smtplib.SMTPException) as exc:
        pytest.fail(f"{endpoint.label}: TLS 1.2 with {STRONG_TLS12_CIPHERS} failed: {exc}. "
                    f"Mozilla's intermediate profile keeps TLS 1.2 for older clients and MTAs.")
    assert version == "TLSv1.2" and cipher is not None, (version, cipher)
