"""What a host should expose, per network zone, computed from its settings (Art. 3).

The common role's model: ``common__firewall_group_services`` says, for each
host group, which named services it opens to the ``internet`` zone and which
only to the ``internal`` zone; ``common__firewall_service_ports`` maps each
name to ``tcp/PORT`` or ``udp/PORT``; ``common__firewall_internal_networks``
lists the internal networks. A service open to the Internet is open to the
internal clients too (they send and read mail through the same ports).
``common__firewall_source_services`` opens services to named sources only,
whatever their zone (a split store's LMTP and auth to its MX hosts).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

ZONES = ("internet", "internal")

Port = tuple[str, int]  # ("tcp", 25)
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class SourceRule:
    #: the service names and their ports, open to `sources` only
    services: frozenset[str]
    ports: frozenset[Port]
    sources: tuple[Network, ...]

    def admits(self, address: str) -> bool:
        ip = ipaddress.ip_address(address)
        return any(ip.version == net.version and ip in net for net in self.sources)


@dataclass(frozen=True)
class ZonePlan:
    #: zone -> service names the host opens to it
    services: dict[str, frozenset[str]]
    #: zone -> (protocol, port) the host opens to it
    ports: dict[str, frozenset[Port]]
    #: every (protocol, port) of the service catalogue (common__firewall_service_ports)
    catalogue: frozenset[Port]
    internal_networks: tuple[Network, ...]
    #: services opened to named sources only (common__firewall_source_services)
    source_rules: tuple[SourceRule, ...] = ()

    def zone_of(self, address: str) -> str:
        ip = ipaddress.ip_address(address)
        if any(ip.version == net.version and ip in net for net in self.internal_networks):
            return "internal"
        return "internet"

    def allowed(self, zone: str) -> frozenset[Port]:
        return self.ports[zone]

    def allowed_from(self, address: str) -> frozenset[Port]:
        """What a new connection from `address` may reach: its zone's ports and
        the ports of every source rule that names it."""
        ports = set(self.ports[self.zone_of(address)])
        for rule in self.source_rules:
            if rule.admits(address):
                ports |= rule.ports
        return frozenset(ports)

    @property
    def all_ports(self) -> frozenset[Port]:
        sources = {port for rule in self.source_rules for port in rule.ports}
        return self.ports["internet"] | self.ports["internal"] | sources


def parse_port(spec: str, service: str) -> Port:
    proto, sep, port = str(spec).partition("/")
    if not sep or proto not in ("tcp", "udp") or not port.isdigit():
        raise ValueError(
            f"common__firewall_service_ports.{service}: {spec!r} is not 'tcp/PORT' or 'udp/PORT'"
        )
    return proto, int(port)


def plan(values: dict[str, Any], groups: list[str]) -> ZonePlan:
    """The zone plan of a host in `groups` (group_names), from its settings `values`."""
    catalogue_spec = values["common__firewall_service_ports"]
    group_services = values["common__firewall_group_services"]
    services: dict[str, set[str]] = {zone: set() for zone in ZONES}
    for group in ["all", *groups]:
        for zone in ZONES:
            services[zone].update((group_services.get(group) or {}).get(zone) or [])
    # Internet services are reachable from the internal zone as well.
    services["internal"] |= services["internet"]
    ports: dict[str, set[Port]] = {zone: set() for zone in ZONES}
    for zone in ZONES:
        for name in services[zone]:
            if name not in catalogue_spec:
                raise ValueError(
                    f"common__firewall_group_services names the service {name!r}, which "
                    "common__firewall_service_ports does not define"
                )
            ports[zone].update(parse_port(spec, name) for spec in catalogue_spec[name])
    catalogue = frozenset(
        parse_port(spec, name) for name, specs in catalogue_spec.items() for spec in specs
    )
    networks = tuple(
        ipaddress.ip_network(str(n), strict=False)
        for n in values["common__firewall_internal_networks"]
    )
    rules = []
    for rule in values.get("common__firewall_source_services") or []:
        names = frozenset(rule["services"])
        unknown = sorted(names - set(catalogue_spec))
        if unknown:
            raise ValueError(
                f"common__firewall_source_services names the service(s) {unknown}, which "
                "common__firewall_service_ports does not define"
            )
        rules.append(SourceRule(
            services=names,
            ports=frozenset(parse_port(spec, n) for n in names for spec in catalogue_spec[n]),
            sources=tuple(ipaddress.ip_network(str(s), strict=False) for s in rule["sources"]),
        ))
    return ZonePlan(
        services={z: frozenset(s) for z, s in services.items()},
        ports={z: frozenset(p) for z, p in ports.items()},
        catalogue=catalogue,
        internal_networks=networks,
        source_rules=tuple(rules),
    )


def sample_address(zone: str, zone_plan: ZonePlan, version: int = 4) -> str:
    """An address that belongs to `zone`, for simulating a packet from it."""
    if zone == "internal":
        for net in zone_plan.internal_networks:
            if net.version == version:
                return str(net.network_address + (1 if net.num_addresses > 1 else 0))
        raise LookupError(f"no IPv{version} internal network")
    candidates = ("203.0.113.7", "192.0.2.7", "8.8.8.8") if version == 4 else (
        "2001:db8::7", "2606:4700::7")
    for candidate in candidates:
        if zone_plan.zone_of(candidate) == "internet":
            return candidate
    raise LookupError("every candidate Internet address is inside an internal network")


def fmt_ports(ports: frozenset[Port] | set[Port]) -> str:
    return ", ".join(f"{proto}/{port}" for proto, port in sorted(ports)) or "none"
