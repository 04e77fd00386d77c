"""The settings of the `lab_peer` role: the lab's "Internet" (roles/lab_peer/defaults/main.yml)."""

from __future__ import annotations

import ipaddress
import posixpath
from collections.abc import Iterator

from pydantic import Field

from hopthu.schema.base import CrossCheck, SettingsModel
from hopthu.schema.types import (
    Cidr,
    DebianPackage,
    DomainName,
    IPAddress,
    UnixUser,
    checked,
)


def _absolute_path(value: str) -> None:
    if not value.startswith("/") or posixpath.normpath(value) != value:
        raise ValueError("is not a normalised absolute path")


def _iso_time(value: str) -> None:
    from datetime import datetime

    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError("is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        raise ValueError("has no time zone; end it with Z (UTC)")


IsoTime = checked(str, "an ISO 8601 time in UTC, e.g. 2026-01-01T00:00:00Z", _iso_time)

AbsolutePath = checked(
    str, "an absolute path without '..' or '//', e.g. /etc/ssl/certs/ca-certificates.crt",
    _absolute_path,
)


class LabPeerSettings(SettingsModel):
    """The lab's "Internet": its authoritative DNS and a plain foreign MTA.

    NSD serves the ministry's published mail records (the dns__* settings,
    as hopthu dns prints them), the peer's own domain and the lab network's
    reverse zone; Postfix receives mail for the peer's domain into local
    maildirs and sends like any Internet MTA. Lab only.
    """

    namespace = "lab_peer"

    lab_peer__packages: list[DebianPackage] = Field(
        description=(
            "Packages of the peer: nsd, postfix, ssl-cert, swaks (the tests send mail with "
            "it) and bind9-dnsutils (dig)."
        )
    )
    lab_peer__domain: DomainName = Field(
        description=(
            "The peer's own mail domain, under the reserved TLD .test (RFC 2606) so it can "
            "never leak onto the real Internet."
        )
    )
    lab_peer__hostname: DomainName = Field(
        description="The peer's host name: its MX, HELO name and the NS of the lab's zones."
    )
    lab_peer__dnssec_inception: IsoTime = Field(
        description=(
            "When the signatures of the peer's DNSSEC-signed zone start to be valid (ISO 8601, "
            "UTC). Fixed, so that an unchanged zone re-renders to the same bytes."
        )
    )
    lab_peer__dnssec_expiration: IsoTime = Field(
        description="When the signatures of the peer's signed zone expire (ISO 8601, UTC)."
    )
    lab_peer__tls_cert_file: AbsolutePath = Field(
        description="The certificate chain the peer's Postfix presents when it receives (PEM)."
    )
    lab_peer__tls_key_file: AbsolutePath = Field(
        description="The private key of lab_peer__tls_cert_file, on the peer."
    )
    lab_peer__tls_cert_controller_file: AbsolutePath = Field(
        description=(
            "The same certificate on the controller (as the pki role issued it): the zone's "
            "DANE-EE TLSA record (3 1 1) pins its key. Absent, the zone has no TLSA record."
        )
    )
    lab_peer__address: IPAddress = Field(
        description=(
            "The address NSD listens on and the peer's A record: its lab address, where the "
            "lab hosts' resolvers forward the lab zones (common__resolver_forward_zones)."
        )
    )
    lab_peer__reverse_network: Cidr = Field(
        description=(
            "The lab network whose reverse zone the peer serves. Its prefix length must be a "
            "multiple of 8 (IPv4) or 4 (IPv6), so that the reverse zone has one name."
        )
    )
    lab_peer__mailboxes: list[UnixUser] = Field(
        description=(
            "Local users whose ~/Maildir receives mail for <user>@<lab_peer__domain>; the lab "
            "tests read what the ministry sent there."
        )
    )
    lab_peer__tls_ca_file: AbsolutePath = Field(
        description=(
            "The CA bundle the peer's Postfix trusts when it sends: Debian's system bundle, "
            "which holds the lab CA once it is installed on the peer."
        )
    )
    lab_peer__tls_enforced_domains: list[DomainName] = Field(
        description=(
            "Domains the peer delivers to only over TLS with a verified certificate that names "
            "the MX host, as an MTA-STS sender does for an enforce policy; empty means "
            "opportunistic TLS everywhere."
        )
    )

    def cross_checks(self) -> Iterator[CrossCheck]:
        from datetime import datetime

        start, end = (datetime.fromisoformat(v) for v in
                      (self.lab_peer__dnssec_inception, self.lab_peer__dnssec_expiration))
        if end <= start:
            yield CrossCheck(
                ("lab_peer__dnssec_expiration",), self.lab_peer__dnssec_expiration,
                f"is not after lab_peer__dnssec_inception ({self.lab_peer__dnssec_inception})",
                "a time after the inception, e.g. 20 years later",
            )
        network = ipaddress.ip_network(self.lab_peer__reverse_network)
        step = 8 if network.version == 4 else 4
        if network.prefixlen == 0 or network.prefixlen % step:
            yield CrossCheck(
                ("lab_peer__reverse_network",), self.lab_peer__reverse_network,
                f"has a prefix length that is not a multiple of {step}, so its reverse zone "
                "has no single name",
                "a network such as 198.18.0.0/24 or 2001:db8::/48",
            )
