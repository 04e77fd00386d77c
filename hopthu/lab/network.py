"""The lab network: the bridge `hopthu0` and the rules that keep it closed.

Every host gets a veth `host0` on the bridge (`systemd-nspawn
--network-bridge`, LAB.md "Networking") and its own network namespace. The
machine holds 198.18.0.1/24 on the bridge, which is where the apt proxy
listens. There is no NAT and no default route in the hosts: a data centre's
mail hosts reach packages through a mirror, not the Internet (DESIGN.md §5).

The hosts have no default route, but a host could add one. So an nftables
table also drops any forwarding between the bridge and the machine's other
interfaces (in both directions), and anything addressed to the lab network
that arrives from outside the bridge. The table only drops lab traffic; it
leaves the machine's own firewall alone.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

from hopthu.lab import state
from hopthu.lab.errors import LabError
from hopthu.lab.processes import run

NFT_TABLE = "hopthu_lab"


def _ruleset() -> str:
    bridge = state.BRIDGE
    return f"""\
# Written by `hopthu lab up` (hopthu/lab/network.py); removed by `hopthu lab down`.
table inet {NFT_TABLE}
delete table inet {NFT_TABLE}
table inet {NFT_TABLE} {{
    # No forwarding between the lab and the outside world, either way: the
    # hosts have no route out, and nothing outside can reach them.
    chain forward {{
        type filter hook forward priority filter - 10; policy accept;
        iifname "{bridge}" oifname != "{bridge}" drop
        oifname "{bridge}" iifname != "{bridge}" drop
    }}
    # The proxy and the bridge address answer the lab and this machine only.
    chain input {{
        type filter hook input priority filter - 10; policy accept;
        ip daddr {state.NETWORK} iifname != {{ "{bridge}", "lo" }} drop
    }}
}}
"""


def _link(device: str) -> dict[str, Any] | None:
    result = subprocess.run(
        ["ip", "-j", "-d", "addr", "show", "dev", device],
        check=False, capture_output=True, text=True, timeout=15,
    )
    if result.returncode != 0:
        return None
    entries = json.loads(result.stdout or "[]")
    return entries[0] if entries else None


def bridge_status() -> dict[str, Any]:
    """{'name', 'present', 'up', 'addresses', 'has_lab_address', 'ports'}."""
    link = _link(state.BRIDGE)
    if link is None:
        return {"name": state.BRIDGE, "present": False, "up": False, "addresses": [],
                "has_lab_address": False, "ports": []}
    addresses = [f"{a['local']}/{a['prefixlen']}" for a in link.get("addr_info", [])
                 if a.get("family") == "inet"]
    ports = subprocess.run(
        ["ip", "-j", "link", "show", "master", state.BRIDGE],
        check=False, capture_output=True, text=True, timeout=15,
    )
    port_names = [p["ifname"] for p in json.loads(ports.stdout or "[]")] if ports.returncode == 0 else []
    return {
        "name": state.BRIDGE,
        "present": True,
        "up": "UP" in link.get("flags", []),
        "addresses": addresses,
        "has_lab_address": state.bridge_cidr() in addresses,
        "ports": port_names,
    }


def ensure_bridge() -> str:
    """Create or repair the bridge; return what was done."""
    link = _link(state.BRIDGE)
    done = []
    if link is None:
        run(["ip", "link", "add", state.BRIDGE, "type", "bridge"], timeout=15,
            what=f"create bridge {state.BRIDGE}")
        done.append("created")
    else:
        kind = link.get("linkinfo", {}).get("info_kind")
        if kind != "bridge":
            raise LabError(
                f"{state.BRIDGE} exists but is a {kind or 'plain'} link, not a bridge; "
                f"remove it (`ip link del {state.BRIDGE}`) and run `hopthu lab up` again"
            )
    current = bridge_status()
    if not current["has_lab_address"]:
        run(["ip", "addr", "add", state.bridge_cidr(), "dev", state.BRIDGE], timeout=15,
            what=f"give {state.BRIDGE} the address {state.bridge_cidr()}")
        if "created" not in done:
            done.append("address restored")
    if not current["up"]:
        run(["ip", "link", "set", state.BRIDGE, "up"], timeout=15,
            what=f"bring {state.BRIDGE} up")
        if "created" not in done:
            done.append("brought up")
    return ", ".join(done) or "already there"


def ensure_isolation() -> str:
    """Load (or reload, atomically) the nftables table that closes the lab."""
    state.RUN_DIR.mkdir(parents=True, exist_ok=True)
    rules = state.RUN_DIR / "hopthu-lab.nft"
    rules.write_text(_ruleset())
    existed = isolation_present()
    run(["nft", "-f", str(rules)], timeout=15, what="load the lab's nftables table")
    return "reloaded" if existed else "loaded"


def isolation_present() -> bool:
    result = subprocess.run(
        ["nft", "list", "table", "inet", NFT_TABLE],
        check=False, capture_output=True, text=True, timeout=15,
    )
    return result.returncode == 0


def remove_isolation() -> str:
    if not isolation_present():
        return "not there"
    run(["nft", "delete", "table", "inet", NFT_TABLE], timeout=15,
        what="remove the lab's nftables table")
    return "removed"


def remove_bridge() -> str:
    if _link(state.BRIDGE) is None:
        return "not there"
    run(["ip", "link", "del", state.BRIDGE], timeout=15, what=f"remove bridge {state.BRIDGE}")
    return "removed"
