"""Each network zone reaches exactly its services of the mail host (Art. 3).

Seen from where real clients stand: peer1 is "the Internet"
(198.18.0.128/25), client1 a machine of the ministry's internal network
(198.18.0.0/25). From each, one bounded TCP handshake per port of mail1
(tests/infra/probe.py, run on the vantage host with python3) tells the
firewall's verdict:

- "filtered" (no answer before the timeout): the firewall dropped the SYN;
- "open" (a listener answered) or "closed" (a reset: nothing listens yet):
  the firewall let it through. Both count as reachable, so the tests hold
  before and after the mail services run; they test the firewall.

The expected ports come from the settings (common__firewall_group_services,
tests/infra/zones.py) AND from the issue's list, hard-coded here, so that a
mistake in the settings cannot quietly change what the test expects.
"""

from __future__ import annotations

import pytest
from vantage import infra_module, probe

from hopthu.settings import load_host

# converged_lab: every host deployed first (one Ansible run per session).
pytestmark = [pytest.mark.lab, pytest.mark.control("ART3-ZONES"), pytest.mark.usefixtures("converged_lab")]

TARGET = "mail1"
INTERNET_HOST = "peer1"
INTERNAL_HOST = "client1"

#: What the Internet may reach on a host that is both MX and store: SMTP,
#: submission (STARTTLS and implicit TLS), IMAPS, POP3S.
ISSUE_INTERNET_PORTS = frozenset({25, 465, 587, 993, 995})
#: What only the internal network may reach: SSH, ManageSieve, metrics (the
#: node exporter, the Postfix exporter, Dovecot's endpoint: issue 7).
ISSUE_INTERNAL_ONLY_PORTS = frozenset({22, 4190, 9100, 9154, 9900})
#: Ports nobody may reach (clear-text mail access, LMTP, Rspamd, Redis...).
CLOSED_EVERYWHERE = frozenset({110, 143, 24, 6379, 11332, 11334})
PROBED = sorted(ISSUE_INTERNET_PORTS | ISSUE_INTERNAL_ONLY_PORTS | CLOSED_EVERYWHERE)

#: Seconds a dropped SYN waits before it counts as "filtered".
PROBE_TIMEOUT = 3.0
REACHABLE = ("open", "closed")


@pytest.fixture(scope="module")
def plan(lab_hosts: dict[str, str]):
    settings = load_host("lab", TARGET)
    zones = infra_module("zones")
    return zones.plan(settings.values, list(settings.values["common__host_groups"]))


@pytest.fixture(scope="module")
def from_internet(lab_hosts: dict[str, str]) -> dict[int, str]:
    return probe(INTERNET_HOST, lab_hosts[TARGET], PROBED, PROBE_TIMEOUT)


@pytest.fixture(scope="module")
def from_internal(lab_hosts: dict[str, str]) -> dict[int, str]:
    return probe(INTERNAL_HOST, lab_hosts[TARGET], PROBED, PROBE_TIMEOUT)


def _tcp(ports) -> set[int]:
    return {port for proto, port in ports if proto == "tcp"}


def test_the_vantage_hosts_sit_in_the_zones_they_play(plan, lab_hosts) -> None:
    assert plan.zone_of(lab_hosts[INTERNET_HOST]) == "internet", (
        f"{INTERNET_HOST} ({lab_hosts[INTERNET_HOST]}) must be outside "
        f"common__firewall_internal_networks to play the Internet"
    )
    assert plan.zone_of(lab_hosts[INTERNAL_HOST]) == "internal", (
        f"{INTERNAL_HOST} ({lab_hosts[INTERNAL_HOST]}) must be inside "
        f"common__firewall_internal_networks to play an internal client"
    )


def test_the_settings_open_exactly_the_mail_ports_to_the_internet(plan) -> None:
    assert _tcp(plan.allowed("internet")) == ISSUE_INTERNET_PORTS, (
        f"common__firewall_group_services opens {sorted(_tcp(plan.allowed('internet')))} of "
        f"{TARGET} to the Internet; the mail system offers it exactly "
        f"{sorted(ISSUE_INTERNET_PORTS)} (Art. 3). Fix the settings."
    )
    internal_only = _tcp(plan.allowed("internal")) - _tcp(plan.allowed("internet"))
    assert ISSUE_INTERNAL_ONLY_PORTS <= internal_only, (
        f"{sorted(ISSUE_INTERNAL_ONLY_PORTS - internal_only)} must be open to the internal "
        f"network only"
    )


@pytest.mark.parametrize("port", PROBED)
def test_the_internet_reaches_exactly_the_internet_services(plan, from_internet, port) -> None:
    expected = port in ISSUE_INTERNET_PORTS
    assert expected == (port in _tcp(plan.allowed("internet"))), "settings and issue disagree"
    verdict = from_internet[port]
    if expected:
        assert verdict in REACHABLE, (
            f"{INTERNET_HOST} -> {TARGET}:{port} was {verdict}: the Internet must reach this "
            f"mail service. Check the nftables ruleset on {TARGET} (`nft list ruleset`)."
        )
    else:
        assert verdict == "filtered", (
            f"{INTERNET_HOST} -> {TARGET}:{port} was {verdict}, not dropped: the Internet must "
            f"not reach port {port}. Check common__firewall_group_services and the ruleset."
        )


@pytest.mark.parametrize("port", PROBED)
def test_an_internal_client_reaches_the_internal_services(plan, from_internal, port) -> None:
    expected = port in ISSUE_INTERNET_PORTS | ISSUE_INTERNAL_ONLY_PORTS
    assert expected == (port in _tcp(plan.allowed("internal"))), "settings and issue disagree"
    verdict = from_internal[port]
    if expected:
        assert verdict in REACHABLE, (
            f"{INTERNAL_HOST} -> {TARGET}:{port} was {verdict}: the internal network must "
            f"reach it (SSH, ManageSieve, metrics and the mail ports)."
        )
    else:
        assert verdict == "filtered", (
            f"{INTERNAL_HOST} -> {TARGET}:{port} was {verdict}: no zone may reach port {port}."
        )
