"""The firewall: each zone reaches exactly the services the settings give it (Art. 3).

Three views of the same promise, each able to fail on its own:

- the loaded ruleset (``nft -j list ruleset``), asked what it does with a new
  connection from each zone to each port (tests/infra/nftsim.py);
- real TCP handshakes from the controller, and from the lab's "Internet"
  host (``--probe-from``), which show what the network actually lets through;
- the listening sockets: nothing listens on a non-loopback address that the
  settings do not expect.

The expected ports are computed from the host's settings (tests/infra/zones.py).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from . import nftsim, probe, zones
from .nftsim import ACCEPT

#: Ports that no base or mail host opens, probed to catch a rule that is too
#: wide: telnet, LMTP, POP3/IMAP in clear, rpcbind, databases, Rspamd's
#: controller, clamd, a web proxy, and a random high port.
EXTRA_PORTS: frozenset[zones.Port] = frozenset(
    [("tcp", p) for p in (23, 24, 53, 110, 111, 143, 3306, 5432, 6379, 8080, 10025,
                          11332, 11334, 3310, 31337)]
    + [("udp", p) for p in (53, 111, 123, 161, 514, 31337)]
)


def candidate_ports(plan: zones.ZonePlan, settings: dict[str, Any]) -> frozenset[zones.Port]:
    return plan.catalogue | plan.all_ports | EXTRA_PORTS | {
        ("tcp", int(settings["common__sshd_port"]))}


@pytest.fixture(scope="module")
def ruleset(host: Any) -> nftsim.Ruleset:
    result = host.run("nft -j list ruleset")
    assert result.rc == 0, (
        f"`nft -j list ruleset` failed (exit {result.rc}): {result.stderr.strip()}. "
        "Is the nftables package installed?"
    )
    return nftsim.Ruleset(json.loads(result.stdout or '{"nftables": []}'))


@pytest.mark.control("ART3-ZONES")
def test_nftables_loads_the_ruleset_at_boot(host: Any) -> None:
    service = host.service("nftables")
    assert service.is_enabled, (
        "nftables.service is not enabled: the ruleset would be gone after a reboot. "
        "Enable it in the common role (systemctl enable nftables)."
    )
    assert service.is_running, (
        "nftables.service is not active: the ruleset was not loaded by it or its last "
        "load failed; see `systemctl status nftables` and `nft -c -f /etc/nftables.conf`."
    )


@pytest.mark.control("ART3-ZONES")
def test_firewall_drops_inbound_by_default(ruleset: nftsim.Ruleset) -> None:
    policies = ruleset.input_policies()
    assert policies, (
        "no nftables chain is hooked on input: the host accepts everything. Deploy the "
        "common role's nftables.conf and check `nft list ruleset`."
    )
    assert "drop" in policies.values(), (
        f"no input chain has `policy drop` ({policies}): inbound traffic must be denied "
        "unless a rule lets it in (default-deny)."
    )


@pytest.mark.control("ART3-ZONES")
@pytest.mark.parametrize("version", [4, 6], ids=["ipv4", "ipv6"])
@pytest.mark.parametrize("zone", zones.ZONES)
def test_firewall_opens_to_each_zone_exactly_its_services(
    ruleset: nftsim.Ruleset, zone_plan: zones.ZonePlan, settings: dict[str, Any],
    zone: str, version: int,
) -> None:
    try:
        source = zones.sample_address(zone, zone_plan, version)
    except LookupError:
        pytest.skip(f"no IPv{version} network is in the {zone} zone of the settings")
    allowed = zone_plan.allowed_from(source)
    verdicts = {
        port: ruleset.verdict(nftsim.Packet(saddr=source, l4proto=port[0], dport=port[1]))
        for port in candidate_ports(zone_plan, settings)
    }
    opened = {p for p, v in verdicts.items() if v == ACCEPT}
    extra, missing = opened - allowed, allowed - opened
    assert not extra and not missing, (
        f"for a new connection from {source} ({zone} zone, IPv{version}) the loaded ruleset "
        f"lets in {zones.fmt_ports(opened)}; the settings give this zone "
        f"{zones.fmt_ports(allowed)} (services: {', '.join(sorted(zone_plan.services[zone]))})."
        + (f"\nOpen but not allowed: {zones.fmt_ports(extra)}." if extra else "")
        + (f"\nAllowed but closed: {zones.fmt_ports(missing)}." if missing else "")
        + "\nRedeploy the common role; if it still differs, its nftables template does "
        "not follow common__firewall_group_services."
    )


@pytest.mark.control("ART3-ZONES")
def test_firewall_opens_source_services_to_their_sources_only(
    ruleset: nftsim.Ruleset, zone_plan: zones.ZonePlan, settings: dict[str, Any],
) -> None:
    if not zone_plan.source_rules:
        pytest.skip("common__firewall_source_services opens nothing to named sources here")
    for rule in zone_plan.source_rules:
        for network in rule.sources:
            source = str(network.network_address)
            verdicts = {port: ruleset.verdict(nftsim.Packet(saddr=source, l4proto=port[0],
                                                           dport=port[1]))
                        for port in rule.ports}
            closed = {p for p, v in verdicts.items() if v != ACCEPT}
            assert not closed, (
                f"{source} is a source of {', '.join(sorted(rule.services))}, but the loaded "
                f"ruleset drops a new connection from it to {zones.fmt_ports(closed)}. "
                "Redeploy the common role."
            )
    # Anyone else in the internal zone stays out (the zone test checks every
    # port from its sample addresses; this one names the rule).
    try:
        outsider = zones.sample_address("internal", zone_plan, 4)
    except LookupError:
        return
    for rule in zone_plan.source_rules:
        if rule.admits(outsider):
            continue
        opened = {p for p in rule.ports - zone_plan.allowed("internal")
                  if ruleset.verdict(nftsim.Packet(saddr=outsider, l4proto=p[0], dport=p[1]))
                  == ACCEPT}
        assert not opened, (
            f"{outsider} (internal zone, not a source of {', '.join(sorted(rule.services))}) "
            f"reaches {zones.fmt_ports(opened)}: the rule is wider than its sources."
        )


@pytest.mark.control("ART3-ZONES")
def test_firewall_keeps_loopback_and_established_connections(
    ruleset: nftsim.Ruleset, zone_plan: zones.ZonePlan
) -> None:
    outsider = zones.sample_address("internet", zone_plan)
    assert ruleset.verdict(nftsim.Packet("127.0.0.1", 53, "udp", iifname="lo")) == ACCEPT, (
        "the ruleset drops traffic on the loopback interface: local services (the "
        "resolver on 127.0.0.1) stop working. Accept `iif lo` first."
    )
    assert ruleset.verdict(nftsim.Packet(outsider, 40000, ct_state="established")) == ACCEPT, (
        "the ruleset drops replies to the host's own connections: accept "
        "`ct state established,related`."
    )


@pytest.mark.control("ART3-ZONES")
@pytest.mark.control("ART11-5-HARDEN")
def test_firewall_lets_operators_reach_sshd_from_the_internal_zone(
    ruleset: nftsim.Ruleset, zone_plan: zones.ZonePlan, settings: dict[str, Any]
) -> None:
    port = int(settings["common__sshd_port"])
    insider = zones.sample_address("internal", zone_plan)
    assert ("tcp", port) in zone_plan.allowed("internal"), (
        f"sshd listens on {port} (common__sshd_port) but the ssh service in "
        "common__firewall_service_ports opens "
        f"{settings['common__firewall_service_ports'].get('ssh')}: after a deploy the "
        "operators are locked out. Make the two settings agree."
    )
    assert ruleset.verdict(nftsim.Packet(insider, port)) == ACCEPT, (
        f"the ruleset drops SSH (tcp/{port}) from the internal zone ({insider})."
    )


@pytest.mark.control("ART3-ZONES")
def test_firewall_answers_real_connections_as_the_zone_plan_says(
    suite: Any, target: Any, host: Any, zone_plan: zones.ZonePlan, settings: dict[str, Any],
    probe_source: str,
) -> None:
    if probe_source == target.name:
        pytest.skip("a host does not probe itself")
    ports = sorted(p for proto, p in candidate_ports(zone_plan, settings) if proto == "tcp")
    timeout = suite.probe_timeout
    if probe_source == "controller":
        source_address = probe.controller_source_address(target.address)
        results = probe.from_controller(target.address, ports, timeout)
    else:
        prober = suite.host(probe_source)
        source_address = suite.target(probe_source).address
        out = prober.run(probe.command(target.address, ports, timeout))
        assert out.rc == 0, f"the probe from {probe_source} failed: {out.stderr.strip()}"
        results = probe.parse(out.stdout)
    zone = zone_plan.zone_of(source_address)
    allowed = {p for proto, p in zone_plan.allowed(zone) if proto == "tcp"}
    blocked = sorted(p for p in allowed if results[p] not in probe.PASSED)
    let_through = sorted(p for p in ports if p not in allowed and results[p] in probe.PASSED)
    assert not blocked and not let_through, (
        f"TCP handshakes from {probe_source} ({source_address}, {zone} zone) to "
        f"{target.name} ({target.address}): "
        + ", ".join(f"{p}={results[p]}" for p in ports)
        + f".\nThe settings open tcp {sorted(allowed)} to the {zone} zone."
        + (f"\nDropped although allowed: {blocked}." if blocked else "")
        + (f"\nLet through although not allowed: {let_through} (a TCP answer, `open` or "
           "`closed`, means the firewall passed the SYN)." if let_through else "")
        + "\nCompare `nft list ruleset` on the host with the zone plan; a router or cloud "
        "firewall between the two hosts can also drop."
    )


def listening_sockets(host: Any) -> list[tuple[str, str, int, str]]:
    """(proto, address, port, process) of every listening TCP/UDP socket."""
    out = host.check_output("ss -Htulnp")
    sockets = []
    for line in out.splitlines():
        cols = line.split()
        if len(cols) < 5:
            continue
        proto, local = cols[0], cols[4]
        address, _, port = local.rpartition(":")
        address = address.strip("[]").split("%")[0]
        process = cols[6] if len(cols) > 6 else ""
        if port.isdigit():
            sockets.append((proto, address, int(port), process))
    return sockets


def is_loopback(address: str) -> bool:
    return address.startswith("127.") or address in ("::1", "localhost")


@pytest.mark.control("ART3-ZONES")
@pytest.mark.control("ART11-5-HARDEN")
def test_nothing_listens_beyond_the_ports_the_settings_expect(
    host: Any, zone_plan: zones.ZonePlan, settings: dict[str, Any]
) -> None:
    expected = zone_plan.all_ports | {("tcp", int(settings["common__sshd_port"]))}
    unexpected = sorted(
        {(proto, port, address, process)
         for proto, address, port, process in listening_sockets(host)
         if not is_loopback(address) and (proto, port) not in expected}
    )
    assert not unexpected, (
        "listening on the network although no zone of this host opens the port: "
        + "; ".join(f"{proto}/{port} on {address or '*'} {process}"
                    for proto, port, address, process in unexpected)
        + f". The settings expect {zones.fmt_ports(expected)}. Bind the service to "
        "127.0.0.1, remove it, or add its port to common__firewall_group_services."
    )
