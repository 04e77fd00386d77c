"""DNSSEC and DANE for the lab's "Internet" zone, so the ministry's outbound DANE is exercised.

The ministry's MX hosts send with ``smtp_tls_security_level = dane`` through
their own validating unbound (roles/postfix, roles/common). DANE only acts
on TLSA records in a DNSSEC-*signed* zone, so the lab's foreign domain
``peer.test`` (served by NSD on peer1, roles/lab_peer) is signed, its MX
publishes a TLSA record, and every lab host's resolver trusts the zone's key
(``common__resolver_trust_anchors``, inventories/lab/group_vars/all.yml).

The lab cannot reach the root, so there is no chain of trust from it: the
trust anchor is configured directly, as a validating resolver does for a
private signed zone (unbound.conf(5), ``trust-anchor``).

**The key is public by design.** It is derived from the zone's name
(``lab_zone_key``), so both engines and every controller compute the same
key, the same trust anchor and byte-identical signed zones, with no secret
file to create, copy or lose. It protects nothing: ``peer.test`` is a
reserved name (RFC 6761) that exists only inside the lab. Never use these
filters for a real zone; the ministry's own zone is signed by its DNS
administrator (``hopthu dns`` prints what to publish).

Signatures are deterministic (Ed25519, RFC 8080: no random nonce) over a
fixed validity window from the settings, so a re-render of an unchanged
zone gives the same bytes: a second deploy changes nothing.

Filters:

- ``dnssec_lab_sign(zone_text, origin, inception, expiration)``: the zone,
  signed (DNSKEY, RRSIG, NSEC), as zone-file text for NSD.
- ``dnssec_lab_trust_anchor(origin)``: ``"<origin>. DNSKEY 257 3 15 <key>"``,
  the line unbound's ``trust-anchor:`` takes.
- ``dane_tlsa_311_from_file(path)``: the ``3 1 1`` TLSA digest (SHA-256 of
  the SubjectPublicKeyInfo, RFC 7672 §3.1.1, RFC 7218) of the certificate in
  a PEM file on the controller, or none when the file does not exist yet
  (the pki role issues it; an offline render has no lab).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

#: Ed25519 (RFC 8080): small keys, and deterministic signatures.
ALGORITHM = 15
#: A single combined signing key: the "secure entry point" flag set (257).
KSK_FLAGS = 257


def lab_zone_key(origin: str):
    """The zone's Ed25519 key, derived from its name: the same everywhere, secret nowhere."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    name = _origin(origin)
    seed = hashlib.sha256(f"hopthu lab DNSSEC key for {name}".encode()).digest()
    return Ed25519PrivateKey.from_private_bytes(seed)


def _origin(origin: Any) -> str:
    if not isinstance(origin, str) or not origin.strip(".") or " " in origin:
        raise ValueError(f"a DNS zone name is required, e.g. 'peer.test'; got {origin!r}")
    return origin.strip(".").lower() + "."


def _time(value: Any, what: str) -> datetime:
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(
                f"the signatures' {what} must be an ISO 8601 time such as "
                f"'2026-01-01T00:00:00Z'; got {value!r}"
            ) from None
    else:
        raise TypeError(f"the signatures' {what} must be an ISO 8601 time; got {value!r}")
    if moment.tzinfo is None:
        raise ValueError(f"the signatures' {what} needs a time zone (end it with Z); got {value!r}")
    return moment.astimezone(UTC)


def _dnskey(origin: str):
    import dns.dnssec

    return dns.dnssec.make_dnskey(lab_zone_key(origin).public_key(), ALGORITHM, flags=KSK_FLAGS)


def dnssec_lab_trust_anchor(origin: str) -> str:
    """The zone's trust anchor, as unbound's ``trust-anchor:`` takes it."""
    name = _origin(origin)
    return f"{name} DNSKEY {_dnskey(name).to_text(chunksize=0)}"


def dnssec_lab_sign(zone_text: str, origin: str, inception: Any, expiration: Any) -> str:
    """`zone_text` (a zone file for `origin`), signed with the zone's lab key.

    Every RRset gets an RRSIG valid from `inception` to `expiration`, the
    names are chained with NSEC, and the apex gets the DNSKEY. The output is
    the zone in canonical order with absolute names: the same input gives the
    same bytes.
    """
    import dns.dnssec
    import dns.exception
    import dns.name
    import dns.zone

    name = _origin(origin)
    start, end = _time(inception, "inception"), _time(expiration, "expiration")
    if end <= start:
        raise ValueError(f"the signatures expire ({end:%Y-%m-%d}) before they start ({start:%Y-%m-%d})")
    try:
        zone = dns.zone.from_text(zone_text, origin=dns.name.from_text(name), relativize=False,
                                  check_origin=True)
    except dns.exception.DNSException as error:
        raise ValueError(f"the zone {name} does not parse: {error}") from None
    with zone.writer() as txn:
        dns.dnssec.sign_zone(zone, txn=txn, keys=[(lab_zone_key(name), _dnskey(name))],
                             inception=start, expiration=end, deterministic=True)
    return zone.to_text(sorted=True, relativize=False, want_origin=True)


def dane_tlsa_311_from_file(path: Any) -> str | None:
    """SHA-256 of the SubjectPublicKeyInfo of the first certificate in a PEM file, in hex.

    None when the file does not exist (yet): the caller leaves the TLSA
    record out and says so.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    if not isinstance(path, str) or not path:
        raise ValueError(f"a certificate path on the controller is required; got {path!r}")
    file = Path(path)
    if not file.is_file():
        return None
    try:
        certificate = x509.load_pem_x509_certificate(file.read_bytes())
    except ValueError as error:
        raise ValueError(f"{path}: not a PEM certificate ({error})") from None
    spki = certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(spki).hexdigest()


class FilterModule:
    """Ansible's entry point; hopthu.render loads it too."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {
            "dnssec_lab_sign": dnssec_lab_sign,
            "dnssec_lab_trust_anchor": dnssec_lab_trust_anchor,
            "dane_tlsa_311_from_file": dane_tlsa_311_from_file,
        }
