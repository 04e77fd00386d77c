"""The local validating resolver: unbound on loopback, DNSSEC on (Art. 11.5).

Mail decisions depend on DNS (MX, SPF, DKIM, DMARC, MTA-STS, DANE), so each
host asks its own unbound, which validates answers; Rspamd also needs fast
answers (LAB.md). The checks ask unbound itself (a real query on 127.0.0.1)
and its effective configuration (``unbound-checkconf -o``).
"""

from __future__ import annotations

import shlex
from typing import Any

import pytest

# A DNS query for localhost./A sent from the host to 127.0.0.1:53. unbound
# answers localhost. from its built-in local zone, so no upstream is needed.
QUERY = r"""
import socket, struct, sys
q = struct.pack(">HHHHHH", 0x4854, 0x0100, 1, 0, 0, 0) + b"\x09localhost\x00" + struct.pack(">HH", 1, 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(3)
s.sendto(q, ("127.0.0.1", 53))
try:
    data = s.recv(512)
except OSError as exc:
    print("no answer:", exc)
    sys.exit(1)
ident, flags = struct.unpack(">HH", data[:4])
print("rcode=%d answers=%d" % (flags & 0xF, struct.unpack(">H", data[6:8])[0]))
print("127.0.0.1" if b"\x7f\x00\x00\x01" in data[12:] else "other")
"""


def checkconf(host: Any, option: str) -> list[str]:
    result = host.run(f"unbound-checkconf -o {shlex.quote(option)}")
    assert result.rc == 0, (
        f"`unbound-checkconf -o {option}` failed: {result.stderr.strip() or result.stdout}"
        "\nunbound's configuration does not parse: fix the template and redeploy."
    )
    return [line.strip() for line in result.stdout.splitlines() if line.strip()]


@pytest.mark.control("ART11-5-HARDEN")
def test_unbound_runs_and_starts_at_boot(host: Any) -> None:
    service = host.service("unbound")
    assert service.is_enabled and service.is_running, (
        "unbound is not enabled and running: see `systemctl status unbound`; the common "
        "role installs and starts it."
    )


@pytest.mark.control("ART11-5-HARDEN")
def test_unbound_answers_on_loopback(host: Any) -> None:
    result = host.run(f"python3 -c {shlex.quote(QUERY)}")
    assert result.rc == 0 and "rcode=0" in result.stdout and "127.0.0.1" in result.stdout, (
        f"a DNS query for localhost. on 127.0.0.1:53 got: {result.stdout.strip()} "
        f"{result.stderr.strip()}. unbound must listen on 127.0.0.1: check "
        "`unbound-checkconf -o interface` and `systemctl status unbound`."
    )


@pytest.mark.control("ART11-5-HARDEN")
def test_resolv_conf_uses_the_local_resolver_only(host: Any) -> None:
    text = host.file("/etc/resolv.conf").content_string
    servers = [line.split()[1] for line in text.splitlines()
               if line.strip().startswith("nameserver") and len(line.split()) > 1]
    assert servers and all(s in ("127.0.0.1", "::1") for s in servers), (
        f"/etc/resolv.conf names the servers {servers}; the host must ask its own "
        "validating unbound only (nameserver 127.0.0.1), or a remote resolver could "
        "answer without DNSSEC validation. Let the common role write /etc/resolv.conf."
    )


@pytest.mark.control("ART11-5-HARDEN")
def test_unbound_validates_dnssec(host: Any) -> None:
    modules = " ".join(checkconf(host, "module-config"))
    assert "validator" in modules.split(), (
        f"unbound's module-config is {modules!r}: without the validator module answers "
        "are not DNSSEC-checked. Use module-config: \"validator iterator\"."
    )
    anchors = checkconf(host, "auto-trust-anchor-file") + checkconf(host, "trust-anchor-file")
    assert anchors, (
        "unbound has no root trust anchor (auto-trust-anchor-file or trust-anchor-file), "
        "so it cannot validate anything: keep Debian's root-auto-trust-anchor-file.conf "
        "or set one in the template."
    )
    permissive = checkconf(host, "val-permissive-mode")
    assert permissive == ["no"], (
        f"unbound's val-permissive-mode is {permissive}: bogus answers would still be "
        "returned. Set val-permissive-mode: no."
    )


@pytest.mark.control("ART11-5-HARDEN")
def test_unbound_skips_validation_only_for_the_configured_domains(
    host: Any, settings: dict[str, Any]
) -> None:
    expected = {d.rstrip(".") for d in settings["common__resolver_insecure_domains"] or []}
    actual = {d.rstrip(".") for d in checkconf(host, "domain-insecure")}
    assert actual == expected, (
        f"unbound does not validate {sorted(actual) or 'nothing'} (domain-insecure); the "
        f"settings say {sorted(expected) or 'nothing'} (common__resolver_insecure_domains). "
        "Redeploy the common role."
    )


@pytest.mark.control("ART11-5-HARDEN")
def test_unbound_serves_only_this_host(host: Any) -> None:
    interfaces = checkconf(host, "interface")
    outside = [i for i in interfaces if i.split("@")[0] not in ("127.0.0.1", "::1")]
    assert interfaces and not outside, (
        f"unbound listens on {interfaces}: it must serve this host only "
        "(interface: 127.0.0.1 and ::1), or it becomes an open resolver."
    )
