"""The split store's firewall, loaded into a real nftables and asked (Art. 3).

Production's store1 opens Dovecot's LMTP, auth and quota-status to its two MX
hosts only (common__firewall_source_services). The rendered ruleset is loaded
into a throw-away network namespace with the real `nft`, read back as JSON,
and evaluated with the infra suite's own evaluator and zone plan
(tests/infra/nftsim.py, tests/infra/zones.py): the same code that judges a
live host with `hopthu verify`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from hopthu.render import render, template_variables
from hopthu.settings import load_host
from tests.infra import nftsim, zones

DOVECOT_PORTS = {("tcp", 24), ("tcp", 12345), ("tcp", 12340)}

pytestmark = pytest.mark.control("ART3-ZONES")


def loaded_ruleset(host: str, tmp_path: Path) -> tuple[nftsim.Ruleset, zones.ZonePlan]:
    if os.geteuid() != 0 or shutil.which("nft") is None or shutil.which("unshare") is None:
        pytest.skip("loading a ruleset needs root, nft (nftables) and unshare")
    settings = load_host("production", host)
    config = tmp_path / "nftables.conf"
    config.write_text(render("etc/nftables.conf.j2", template_variables(settings.template_vars())))
    # A new network namespace: the ruleset never touches this machine's firewall.
    out = subprocess.run(
        ["unshare", "--net", "sh", "-c", f"nft -f {config} && nft -j list ruleset"],
        capture_output=True, text=True, timeout=30, check=False,
    )
    assert out.returncode == 0, f"nft refused the rendered ruleset of {host}: {out.stderr}"
    values = settings.values
    return (nftsim.Ruleset(json.loads(out.stdout)),
            zones.plan(values, list(values["common__host_groups"])))


def accepted(ruleset: nftsim.Ruleset, source: str, ports: set[zones.Port]) -> set[zones.Port]:
    return {p for p in ports
            if ruleset.verdict(nftsim.Packet(saddr=source, l4proto=p[0], dport=p[1]))
            == nftsim.ACCEPT}


def test_the_mx_hosts_reach_the_stores_dovecot_ports(tmp_path: Path) -> None:
    ruleset, plan = loaded_ruleset("store1", tmp_path)
    for mx in ("198.51.100.11", "198.51.100.12"):
        assert accepted(ruleset, mx, DOVECOT_PORTS) == DOVECOT_PORTS
        assert plan.allowed_from(mx) >= DOVECOT_PORTS


def test_no_other_internal_host_reaches_them(tmp_path: Path) -> None:
    ruleset, plan = loaded_ruleset("store1", tmp_path)
    outsider = zones.sample_address("internal", plan, 4)
    assert plan.zone_of(outsider) == "internal"
    assert accepted(ruleset, outsider, DOVECOT_PORTS) == set()
    assert accepted(ruleset, "203.0.113.7", DOVECOT_PORTS) == set()
    # ... while the zone's own services still work from there.
    assert accepted(ruleset, outsider, {("tcp", 22), ("tcp", 993)}) == {("tcp", 22), ("tcp", 993)}


def test_the_zone_plan_expects_exactly_what_the_ruleset_does(tmp_path: Path) -> None:
    ruleset, plan = loaded_ruleset("store1", tmp_path)
    candidates = plan.catalogue | plan.all_ports
    for source in ("198.51.100.11", zones.sample_address("internal", plan, 4), "203.0.113.7"):
        assert accepted(ruleset, source, set(candidates)) == plan.allowed_from(source), source
    assert DOVECOT_PORTS <= plan.all_ports  # so the listener check expects them


def test_an_mx_host_opens_none_of_them(tmp_path: Path) -> None:
    ruleset, _plan = loaded_ruleset("mx1", tmp_path)
    assert accepted(ruleset, "198.51.100.21", DOVECOT_PORTS) == set()
