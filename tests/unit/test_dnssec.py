"""filter_plugins/hopthu_dnssec.py: the lab's signed peer zone, its trust anchor and TLSA digests."""

from __future__ import annotations

import datetime as dt
import hashlib
import sys
from pathlib import Path

import dns.dnssec
import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import dns.zone
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "filter_plugins"))
import hopthu_dnssec as d

START, END = "2026-01-01T00:00:00Z", "2046-01-01T00:00:00Z"
ZONE = f"""$ORIGIN peer.test.
$TTL 300
@ IN SOA peer1.peer.test. hostmaster.peer.test. ( 1 3600 600 86400 60 )
@ IN NS peer1.peer.test.
peer.test. IN MX 10 peer1.peer.test.
peer1.peer.test. IN A 198.18.0.130
_25._tcp.peer1.peer.test. IN TLSA 3 1 1 {"ab" * 32}
"""


def signed_zone(text: str = ZONE, origin: str = "peer.test") -> dns.zone.Zone:
    out = d.dnssec_lab_sign(text, origin, START, END)
    return dns.zone.from_text(out, origin=origin + ".", relativize=False)


def test_every_rrset_of_the_signed_zone_validates_against_the_trust_anchor() -> None:
    zone = signed_zone()
    anchor = d.dnssec_lab_trust_anchor("peer.test").split(" DNSKEY ", 1)
    origin = dns.name.from_text(anchor[0])
    key = dns.rrset.from_text(origin, 300, "IN", "DNSKEY", anchor[1])
    assert zone.get_rdataset(origin, "DNSKEY") == key  # the apex publishes the anchored key
    when = dt.datetime(2026, 11, 30, tzinfo=dt.UTC).timestamp()
    checked = 0
    for name, node in zone.nodes.items():
        for rdataset in node.rdatasets:
            if rdataset.rdtype == dns.rdatatype.RRSIG:
                continue
            sigs = node.get_rdataset(dns.rdataclass.IN, dns.rdatatype.RRSIG, rdataset.rdtype)
            assert sigs, f"{name} {dns.rdatatype.to_text(rdataset.rdtype)} is not signed"
            dns.dnssec.validate((name, rdataset), (name, sigs), {origin: key}, now=when)
            checked += 1
    assert checked >= 8  # SOA NS MX DNSKEY NSEC + A NSEC + TLSA NSEC


def test_a_tampered_record_no_longer_validates() -> None:
    zone = signed_zone()
    origin = dns.name.from_text("peer.test.")
    key = zone.get_rdataset(origin, "DNSKEY")
    name = dns.name.from_text("_25._tcp.peer1.peer.test.")
    sigs = zone.get_rdataset(name, "RRSIG", "TLSA")
    forged = dns.rrset.from_text(name, 300, "IN", "TLSA", f"3 1 1 {'cd' * 32}")
    with pytest.raises(dns.dnssec.ValidationFailure):
        dns.dnssec.validate(forged, (name, sigs), {origin: key},
                            now=dt.datetime(2026, 11, 30, tzinfo=dt.UTC).timestamp())


def test_signing_is_deterministic_and_the_key_depends_on_the_zone_name() -> None:
    assert d.dnssec_lab_sign(ZONE, "peer.test", START, END) == d.dnssec_lab_sign(
        ZONE, "peer.test.", START, END)
    assert d.dnssec_lab_trust_anchor("peer.test") != d.dnssec_lab_trust_anchor("other.test")
    assert d.dnssec_lab_trust_anchor("Peer.Test.") == d.dnssec_lab_trust_anchor("peer.test")
    assert d.dnssec_lab_trust_anchor("peer.test").startswith("peer.test. DNSKEY 257 3 15 ")
    assert " " not in d.dnssec_lab_trust_anchor("peer.test").split(" 15 ", 1)[1]


def test_signatures_carry_the_configured_validity_window() -> None:
    zone = signed_zone()
    sig = zone.get_rdataset("peer.test.", "RRSIG", "SOA")[0]
    assert (sig.inception, sig.expiration) == (
        int(dt.datetime(2026, 1, 1, tzinfo=dt.UTC).timestamp()),
        int(dt.datetime(2046, 1, 1, tzinfo=dt.UTC).timestamp()),
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((ZONE, "peer.test", END, START), "before they start"),
        ((ZONE, "peer.test", "1 Jan 2026", END), "must be an ISO 8601 time"),
        ((ZONE, "peer.test", "2026-01-01T00:00:00", END), "needs a time zone"),
        ((ZONE + "bad record here\n", "peer.test", START, END), "the zone peer.test. does not parse"),
        ((ZONE, "", START, END), "a DNS zone name is required"),
    ],
)
def test_bad_input_is_refused_with_a_reason(args: tuple, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        d.dnssec_lab_sign(*args)


def certificate_file(tmp_path: Path) -> tuple[Path, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "peer1.peer.test")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    path = tmp_path / "peer1.crt"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    spki = key.public_key().public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)
    return path, hashlib.sha256(spki).hexdigest()


def test_tlsa_digest_is_the_sha256_of_the_certificates_public_key(tmp_path: Path) -> None:
    path, digest = certificate_file(tmp_path)
    assert d.dane_tlsa_311_from_file(str(path)) == digest
    assert d.dane_tlsa_311_from_file(str(tmp_path / "absent.crt")) is None
    (tmp_path / "junk.crt").write_text("not a certificate")
    with pytest.raises(ValueError, match="junk.crt: not a PEM certificate"):
        d.dane_tlsa_311_from_file(str(tmp_path / "junk.crt"))
