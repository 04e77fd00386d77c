"""The lab's DNS on peer1 serves what `hopthu dns` prints, and every lab host uses it.

peer1 plays the Internet's DNS (roles/lab_peer): NSD answers for moj.gov.vn,
peer.test and the lab network's reverse zone, and each lab host's resolver
forwards those zones there (common__resolver_forward_zones). So the lab
resolves the ministry's domain from exactly the records a DNS administrator
is told to publish; the flow tests depend on it.
"""

from __future__ import annotations

import shlex

import pytest
from vantage import run

from hopthu import dns as hdns
from hopthu import inventory

# converged_lab: every host deployed first (one Ansible run per session).
pytestmark = [pytest.mark.lab, pytest.mark.usefixtures("converged_lab")]

DNS_HOST = "peer1"
LAB_HOSTS = list(inventory.load("lab").hosts)


def served(lab_hosts, queries: list[tuple[str, str]]) -> set[tuple[str, int, str, str]]:
    """(owner, ttl, type, rdata) of what NSD on peer1 answers, with authority, for `queries`."""
    args = " ".join(f"{shlex.quote(name)} {rtype}" for name, rtype in queries)
    result = run(DNS_HOST, f"dig +noall +answer +norecurse +time=2 +tries=2 "
                           f"@{lab_hosts[DNS_HOST]} {args}", timeout=60)
    assert result.rc == 0, f"dig on {DNS_HOST} failed: {result.err}"
    found = set()
    for line in result.out.splitlines():
        owner, ttl, _klass, rtype, rdata = line.split(None, 4)
        found.add((owner, int(ttl), rtype, rdata.strip()))
    return found


def test_the_lab_dns_serves_every_record_hopthu_dns_prints(lab_hosts) -> None:
    pub = hdns.publication("lab", tlsa=hdns.TlsaSource(from_settings=False))
    wanted = {(r["owner"], r["ttl"], r["type"], r["rdata"]) for r in pub.records()}
    answers = served(lab_hosts, sorted({(r[0], r[2]) for r in wanted}))
    missing = sorted(wanted - answers)
    assert not missing, (
        f"NSD on {DNS_HOST} does not serve {missing}; `hopthu dns --inventory lab` prints "
        f"them. Deploy peer1 again (roles/lab_peer) and check "
        f"`nsd-checkzone moj.gov.vn /etc/nsd/zones/ministry.zone` there."
    )


def test_the_lab_dns_serves_the_reverse_names_hopthu_dns_prints(lab_hosts) -> None:
    pub = hdns.publication("lab", tlsa=hdns.TlsaSource(from_settings=False))
    wanted = {(r["owner"], r["ttl"], r["type"], r["rdata"]) for r in pub.reverse}
    assert wanted <= served(lab_hosts, sorted({(r[0], r[2]) for r in wanted}))


@pytest.mark.parametrize("host", LAB_HOSTS)
def test_every_lab_host_resolves_the_lab_zones_through_peer1(lab_hosts, host: str) -> None:
    names = {"mail1.moj.gov.vn": lab_hosts["mail1"], "peer1.peer.test": lab_hosts["peer1"]}
    result = run(host, "getent hosts " + " ".join(names), timeout=30)
    got = dict(reversed(line.split()[:2]) for line in result.out.splitlines() if line.strip())
    assert got == names, (
        f"{host} resolves {got} instead of {names}: its resolver must forward moj.gov.vn and "
        f"peer.test to peer1 (common__resolver_forward_zones); deploy {host} again if its "
        f"unbound configuration predates them."
    )
    reverse = run(host, f"getent hosts {lab_hosts['mail1']}", timeout=30).out.split()
    assert reverse[1:2] == ["mail1.moj.gov.vn"], (
        f"{host}: {lab_hosts['mail1']} does not map back to mail1.moj.gov.vn: {reverse}"
    )
