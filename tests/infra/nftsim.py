"""Evaluate a loaded nftables ruleset (``nft -j list ruleset``) for one packet.

The firewall checks ask the ruleset the host really runs what it would do
with a new connection from a given address to a given port, instead of
matching the text of nftables.conf: whatever way the role writes the rules
(sets, verdict maps, per-zone chains), the answer must be the zone plan.

Only the expressions a host firewall needs are understood: payload fields of
ip/ip6/tcp/udp/th, meta l4proto/nfproto/iif/iifname/oif/pkttype, ct state,
anonymous and named sets, prefixes, ranges, verdict maps, and the verdicts
accept/drop/reject/jump/goto/return/continue. counter, log, limit, quota and
comments are ignored (limit is taken as matching). Anything else raises
`Unsupported`, naming the expression, so a new construct in the role makes
the check fail loudly rather than guess.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

ACCEPT, DROP = "accept", "drop"


class Unsupported(ValueError):
    """The ruleset uses an expression this evaluator does not model."""


@dataclass(frozen=True)
class Packet:
    saddr: str
    dport: int
    l4proto: str = "tcp"  # "tcp" or "udp"
    iifname: str = "hopthu-probe0"
    ct_state: str = "new"
    sport: int = 40000
    daddr: str = ""

    @property
    def family(self) -> str:
        return "ip6" if ipaddress.ip_address(self.saddr).version == 6 else "ip"


class _Verdict(Exception):
    def __init__(self, kind: str, target: str | None = None) -> None:
        super().__init__(kind)
        self.kind = kind
        self.target = target


_IGNORED = {"counter", "log", "quota", "notrack", "comment", "mangle", "xt", "limit"}
_VERDICTS = {"accept", "drop", "reject", "jump", "goto", "return", "continue", "queue"}


class Ruleset:
    def __init__(self, document: dict[str, Any]) -> None:
        self.chains: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.rules: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
        self.sets: dict[tuple[str, str, str], list[Any]] = {}
        self.maps: dict[tuple[str, str, str], list[Any]] = {}
        for entry in document.get("nftables", []):
            if "chain" in entry:
                c = entry["chain"]
                key = (c["family"], c["table"], c["name"])
                self.chains[key] = c
                self.rules.setdefault(key, [])
            elif "rule" in entry:
                r = entry["rule"]
                self.rules.setdefault((r["family"], r["table"], r["chain"]), []).append(r)
            elif "set" in entry:
                s = entry["set"]
                self.sets[(s["family"], s["table"], s["name"])] = list(s.get("elem", []))
            elif "map" in entry:
                m = entry["map"]
                self.maps[(m["family"], m["table"], m["name"])] = list(m.get("elem", []))

    def input_chains(self, family: str) -> list[tuple[str, str, str]]:
        """Base chains on the input hook that see `family` packets, by priority."""
        found = [
            (c.get("prio", 0), key)
            for key, c in self.chains.items()
            if c.get("hook") == "input" and c["family"] in ("inet", family)
        ]
        return [key for _, key in sorted(found)]

    def input_policies(self) -> dict[str, str]:
        """'family table chain' -> policy, for every input base chain."""
        return {
            " ".join(key): c.get("policy", "accept")
            for key, c in self.chains.items()
            if c.get("hook") == "input"
        }

    def verdict(self, packet: Packet) -> str:
        """ACCEPT or DROP (reject counts as drop) for `packet` on the input hook."""
        chains = self.input_chains(packet.family)
        if not chains:
            return ACCEPT
        for key in chains:
            result = self._run_base(key, packet)
            if result != ACCEPT:
                return DROP
        return ACCEPT

    # --- evaluation -----------------------------------------------------------

    def _run_base(self, key: tuple[str, str, str], packet: Packet) -> str:
        try:
            self._run_chain(key, packet, depth=0)
        except _Verdict as v:
            if v.kind == "accept":
                return ACCEPT
            if v.kind in ("drop", "reject", "queue"):
                return DROP
        return ACCEPT if self.chains[key].get("policy", "accept") == "accept" else DROP

    def _run_chain(self, key: tuple[str, str, str], packet: Packet, depth: int) -> None:
        """Run a chain; raise _Verdict on a final verdict, return on fall-through/return."""
        if depth > 16:
            raise Unsupported(f"chain {key} jumps deeper than 16 levels")
        for rule in self.rules.get(key, []):
            try:
                self._run_rule(key, rule, packet, depth)
            except _Verdict as v:
                if v.kind == "return":
                    return
                if v.kind == "continue":
                    continue
                if v.kind in ("jump", "goto"):
                    target = (key[0], key[1], v.target or "")
                    if target not in self.chains:
                        raise Unsupported(f"rule jumps to unknown chain {v.target!r}") from None
                    self._run_chain(target, packet, depth + 1)
                    if v.kind == "goto":
                        return
                    continue
                raise

    def _run_rule(
        self, key: tuple[str, str, str], rule: dict[str, Any], packet: Packet, depth: int
    ) -> None:
        for expr in rule.get("expr", []):
            (kind, body), = expr.items()
            if kind == "match":
                if not self._match(key, body, packet):
                    return
            elif kind in _VERDICTS:
                target = body.get("target") if isinstance(body, dict) else None
                raise _Verdict(kind, target)
            elif kind == "vmap":
                value = self._value(body["key"], packet)
                if value is _ABSENT:
                    return
                for elem_key, verdict in self._elements(key, body["data"]):
                    if self._in(value, elem_key):
                        (vkind, vbody), = verdict.items()
                        raise _Verdict(vkind, vbody.get("target") if isinstance(vbody, dict)
                                       else None)
                return
            elif kind in _IGNORED:
                continue
            else:
                raise Unsupported(f"statement {kind!r} in rule {_show(rule)}")

    def _match(self, key: tuple[str, str, str], body: dict[str, Any], packet: Packet) -> bool:
        op = body.get("op", "==")
        left = self._value(body["left"], packet)
        if left is _ABSENT:
            # The packet has no such header (tcp dport on a udp packet): the
            # rule's implicit protocol dependency fails whatever the operator.
            return False
        right = body["right"]
        if op in ("==", "in"):
            return self._in(left, self._right(key, right))
        if op == "!=":
            return not self._in(left, self._right(key, right))
        if op in ("<", ">", "<=", ">="):
            r = self._right(key, right)
            if not isinstance(r, int) or not isinstance(left, int):
                raise Unsupported(f"comparison {op} on {_show(body)}")
            return {"<": left < r, ">": left > r, "<=": left <= r, ">=": left >= r}[op]
        raise Unsupported(f"match operator {op!r} in {_show(body)}")

    def _value(self, left: Any, packet: Packet) -> Any:
        if isinstance(left, dict) and "payload" in left:
            p = left["payload"]
            proto, field_name = p.get("protocol"), p.get("field")
            if proto in ("ip", "ip6"):
                if proto != packet.family:
                    return _ABSENT
                if field_name == "saddr":
                    return ipaddress.ip_address(packet.saddr)
                if field_name == "daddr" and packet.daddr:
                    return ipaddress.ip_address(packet.daddr)
                if field_name in ("protocol", "nexthdr"):
                    return packet.l4proto
            if proto in ("tcp", "udp", "th"):
                if proto != "th" and proto != packet.l4proto:
                    return _ABSENT
                if field_name == "dport":
                    return packet.dport
                if field_name == "sport":
                    return packet.sport
                if proto == "tcp" and field_name == "flags":
                    return "syn" if packet.ct_state == "new" else "ack"
            if proto in ("icmp", "icmpv6", "sctp", "ah", "esp", "comp", "dccp", "udplite"):
                return _ABSENT
            raise Unsupported(f"payload {proto} {field_name}")
        if isinstance(left, dict) and "meta" in left:
            meta = left["meta"]["key"]
            if meta == "l4proto":
                return packet.l4proto
            if meta == "nfproto":
                return "ipv6" if packet.family == "ip6" else "ipv4"
            if meta in ("iifname", "iif"):
                return packet.iifname
            if meta in ("oifname", "oif"):
                return _ABSENT
            if meta == "pkttype":
                return "host"
            raise Unsupported(f"meta {meta}")
        if isinstance(left, dict) and "ct" in left:
            ct = left["ct"]["key"]
            if ct == "state":
                return packet.ct_state
            if ct == "status":
                return _ABSENT
            raise Unsupported(f"ct {ct}")
        if isinstance(left, dict) and "concat" in left:
            parts = [self._value(part, packet) for part in left["concat"]]
            return _ABSENT if _ABSENT in parts else tuple(parts)
        raise Unsupported(f"expression {_show(left)}")

    def _right(self, key: tuple[str, str, str], right: Any) -> Any:
        if isinstance(right, str) and right.startswith("@"):
            name = (key[0], key[1], right[1:])
            if name not in self.sets:
                raise Unsupported(f"reference to unknown set {right}")
            return {"set": self.sets[name]}
        return right

    def _elements(self, key: tuple[str, str, str], data: Any) -> list[tuple[Any, Any]]:
        if isinstance(data, str) and data.startswith("@"):
            name = (key[0], key[1], data[1:])
            if name not in self.maps:
                raise Unsupported(f"reference to unknown map {data}")
            elems = self.maps[name]
        elif isinstance(data, dict) and "set" in data:
            elems = data["set"]
        else:
            raise Unsupported(f"verdict map data {_show(data)}")
        return [tuple(e) for e in elems]

    def _in(self, value: Any, right: Any) -> bool:
        if isinstance(right, dict) and "set" in right:
            return any(self._in(value, elem) for elem in right["set"])
        if isinstance(right, list):
            if isinstance(value, tuple):
                return len(right) == len(value) and all(
                    self._in(v, r) for v, r in zip(value, right, strict=True))
            # ct state { established, related } comes as a plain list.
            return any(self._in(value, elem) for elem in right)
        if isinstance(right, dict) and "elem" in right:
            return self._in(value, right["elem"]["val"])
        if isinstance(right, dict) and "prefix" in right:
            if not isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address):
                return False
            net = ipaddress.ip_network(
                f"{right['prefix']['addr']}/{right['prefix']['len']}", strict=False)
            return value.version == net.version and value in net
        if isinstance(right, dict) and "range" in right:
            low, high = right["range"]
            if isinstance(value, int):
                return int(low) <= value <= int(high)
            if isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address):
                lo, hi = ipaddress.ip_address(low), ipaddress.ip_address(high)
                return lo.version == value.version and lo <= value <= hi
            return False
        if isinstance(right, dict) and "concat" in right:
            return self._in(value, right["concat"])
        if isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address):
            if not isinstance(right, str):
                return False
            try:
                return value == ipaddress.ip_address(right)
            except ValueError:
                return False
        if isinstance(value, int):
            if isinstance(right, int):
                return value == right
            return str(right) == _SERVICE_NAMES.get(value, str(value))
        if isinstance(right, dict):
            raise Unsupported(f"set element {_show(right)}")
        return value == right


class _Absent:
    def __repr__(self) -> str:
        return "<absent>"


_ABSENT = _Absent()

#: nft -j prints well-known ports as numbers, but older versions printed names.
_SERVICE_NAMES = {22: "ssh", 25: "smtp", 53: "domain", 443: "https", 465: "submissions",
                  587: "submission", 993: "imaps", 995: "pop3s", 4190: "sieve"}


def _show(obj: Any) -> str:
    text = repr(obj)
    return text if len(text) < 200 else text[:197] + "..."
