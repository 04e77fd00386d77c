"""The settings of the `common` role: the base every host gets (roles/common/defaults/main.yml)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

from pydantic import Field

from hopthu.schema.base import CrossCheck, SettingsModel, Strict
from hopthu.schema.types import (
    Cidr,
    ClockTime,
    DebianPackage,
    DnsZone,
    ForwardZoneName,
    GroupName,
    HostName,
    HttpUrl,
    IPAddress,
    JournaldSize,
    JournaldTimespan,
    MailRecipient,
    OptionalHttpUrl,
    Port,
    PortSpec,
    ServiceName,
    Text,
    Timezone,
    TrustAnchor,
    UnixUser,
)


class ForwardZone(Strict):
    """One zone unbound forwards instead of resolving it itself."""

    name: ForwardZoneName = Field(description="The zone, or '.' for every zone.")
    addresses: list[IPAddress] = Field(
        min_length=1, description="The DNS servers to forward the zone to."
    )


class ZoneServices(Strict):
    """What one host group opens in each firewall zone (Art. 3)."""

    internet: list[ServiceName] = Field(description="Services open to the Internet zone.")
    internal: list[ServiceName] = Field(description="Services open to the internal networks.")


class SourceServices(Strict):
    """Services a host opens to named sources only, in either zone."""

    services: list[ServiceName] = Field(
        min_length=1, description="Services, named in common__firewall_service_ports."
    )
    sources: list[Cidr] = Field(
        min_length=1, description="The addresses or networks (CIDR) that may reach them."
    )


class CommonSettings(SettingsModel):
    """The base every hopthu host gets before any mail service.

    Debian release, apt sources and proxy, base packages, time, unattended
    security upgrades, persistent journald logs, sshd, a local validating
    resolver, the two-zone nftables firewall and the login banner.
    """

    namespace = "common"

    # --- Host facts --------------------------------------------------------------
    common__debian_major: Literal[12, 13] = Field(
        description=(
            "The Debian major release of the host: 12 (bookworm) or 13 (trixie). Both engines "
            "read it from the host at deploy time and refuse any other release; templates use "
            "it where a service's syntax or defaults differ (OpenSSH's key exchanges, Dovecot "
            "2.3 vs 2.4). The default is only what offline rendering assumes."
        )
    )
    common__host_groups: list[GroupName] = Field(
        description=(
            "The groups this host belongs to. Templates read this instead of Ansible's magic "
            "group_names, so the pyinfra renderer can supply the same value."
        )
    )

    # --- apt -----------------------------------------------------------------------
    common__apt_mirror: HttpUrl = Field(
        description=(
            "The Debian mirror the hosts install from. A data centre points this at its "
            "internal mirror; the default is Debian's CDN."
        )
    )
    common__apt_security_mirror: HttpUrl = Field(
        description="The mirror for Debian security updates (Art. 11.2: security updates "
        "are applied)."
    )
    common__apt_proxy: OptionalHttpUrl = Field(
        description=(
            "An HTTP proxy for apt, such as apt-cacher-ng (http://host:3142), or an empty "
            "string for none. The lab sets it to the proxy on the lab bridge."
        )
    )
    common__apt_components: list[Literal["main", "contrib", "non-free", "non-free-firmware"]] = (
        Field(
            min_length=1,
            description=(
                "The archive components to enable. main alone keeps the hosts free of "
                "non-free code."
            ),
        )
    )

    # --- Packages ------------------------------------------------------------------
    common__packages: list[DebianPackage] = Field(
        description="Base packages every host gets. Mail services add their own in their roles."
    )
    common__packages_extra: list[DebianPackage] = Field(
        description="Extra packages a site wants on every host, on top of common__packages."
    )

    # --- Time ----------------------------------------------------------------------
    common__timezone: Timezone = Field(
        description=(
            "The host's time zone, an IANA name. The ministry works in Viet Nam time; logs "
            "stay in UTC-relative journald timestamps either way."
        )
    )
    common__ntp_servers: list[HostName] = Field(
        description=(
            "NTP servers or pools for chrony. Empty means Debian's pool, which a data centre "
            "without Internet access must replace with its own time servers."
        )
    )

    # --- Unattended upgrades (Art. 11.2) -------------------------------------------
    common__unattended_upgrades_enabled: bool = Field(
        description="Whether security updates install automatically every day (Art. 11.2)."
    )
    common__unattended_upgrades_reboot: bool = Field(
        description=(
            "Whether the host may reboot by itself after an update that needs it. Off by "
            "default: mail hosts reboot in a maintenance window."
        )
    )
    common__unattended_upgrades_reboot_time: ClockTime = Field(
        description="When an automatic reboot may happen, if it is allowed (HH:MM)."
    )
    common__unattended_upgrades_mail: MailRecipient = Field(
        description="Where unattended-upgrades mails its report; an empty string for nobody."
    )

    # --- journald (Art. 11.5) ------------------------------------------------------
    common__journald_max_use: JournaldSize = Field(
        description=(
            "The cap on the disk space of the persistent journal, in journald's size syntax. "
            "Logs are kept on disk across reboots (Art. 11.5: audit logs)."
        )
    )
    common__journald_max_retention: JournaldTimespan = Field(
        description="How long the journal keeps entries, in systemd's time span syntax."
    )

    # --- sshd (Art. 11.5) ----------------------------------------------------------
    common__sshd_port: Port = Field(
        description=(
            "The SSH port. Only the internal zone may reach it (common__firewall_group_services); "
            "common__firewall_service_ports.ssh must open it."
        )
    )
    common__sshd_permit_root_login: Literal["prohibit-password", "no"] = Field(
        description=(
            "Whether root may log in over SSH with a key only (prohibit-password) or not at "
            "all (no)."
        )
    )
    common__sshd_allow_users: list[UnixUser] = Field(
        description="Users allowed to log in over SSH; empty means any user with a key."
    )

    # --- Local validating resolver (unbound) ---------------------------------------
    common__resolver_forward_zones: list[ForwardZone] = Field(
        description=(
            "Zones unbound forwards to other servers, each {name, addresses}, e.g. an internal "
            "zone to the ministry's DNS. A zone named '.' forwards everything. unbound listens "
            "on 127.0.0.1 and ::1 only and validates DNSSEC."
        )
    )
    common__resolver_insecure_domains: list[DnsZone] = Field(
        description=(
            "Zones that are not signed and must not be validated (lab zones, internal zones "
            "without DNSSEC)."
        )
    )
    common__resolver_trust_anchors: list[TrustAnchor] = Field(
        description=(
            "Trust anchors of signed zones with no chain of trust from the root, one DNSKEY "
            "or DS record each in zone-file form; unbound validates those zones from them."
        )
    )

    # --- Firewall: nftables with two zones (Art. 3) ----------------------------------
    common__firewall_internal_networks: list[Cidr] = Field(
        min_length=1,
        description=(
            "The internal networks, as CIDRs. Everything else is the Internet zone (Art. 3)."
        ),
    )
    common__firewall_service_ports: dict[ServiceName, list[PortSpec]] = Field(
        description="The named services and their ports, each tcp/PORT or udp/PORT."
    )
    common__firewall_group_services: dict[GroupName, ZoneServices] = Field(
        description=(
            "What each host group opens, per zone: {group: {internet: [services], internal: "
            "[services]}}, services named in common__firewall_service_ports. A host opens the "
            "union over its groups; anything not listed is dropped (default-deny inbound)."
        )
    )
    common__firewall_source_services: list[SourceServices] = Field(
        description=(
            "Services the host opens to named sources only, each {services, sources}: e.g. a "
            "split store opens LMTP, Dovecot's auth and quota-status to its MX hosts only."
        )
    )

    # --- Hardening (Art. 11.5) -------------------------------------------------------
    common__login_banner: Text = Field(
        min_length=1,
        description="The legal notice shown before login (/etc/issue.net, /etc/issue).",
    )

    def cross_checks(self) -> Iterator[CrossCheck]:
        services = self.common__firewall_service_ports
        known = ", ".join(sorted(services))
        for group, zones in self.common__firewall_group_services.items():
            for zone in ("internet", "internal"):
                for index, service in enumerate(getattr(zones, zone)):
                    if service not in services:
                        yield CrossCheck(
                            ("common__firewall_group_services", group, zone, index),
                            service,
                            "names a service that common__firewall_service_ports does not define",
                            f"one of the services of common__firewall_service_ports: {known}",
                        )
        for index, rule in enumerate(self.common__firewall_source_services):
            for position, service in enumerate(rule.services):
                if service not in services:
                    yield CrossCheck(
                        ("common__firewall_source_services", index, "services", position),
                        service,
                        "names a service that common__firewall_service_ports does not define",
                        f"one of the services of common__firewall_service_ports: {known}",
                    )
        # A changed SSH port that the firewall does not open locks the operators out.
        ssh = f"tcp/{self.common__sshd_port}"
        if "ssh" in services and ssh not in services["ssh"]:
            yield CrossCheck(
                ("common__firewall_service_ports", "ssh"),
                services["ssh"],
                f"does not open the SSH port common__sshd_port = {self.common__sshd_port}",
                f"a list of port specs that includes {ssh!r}",
            )
