"""The ministry's published DNS: the `dns__*` namespace (project-wide, no role).

What the Internet must find in the ministry's zone for mail to work: MX,
addresses, SPF, DMARC, MTA-STS, TLS-RPT, client SRV records, autoconfig.
`hopthu dns --inventory ENV` prints those records for the DNS administrator,
and the lab's DNS server on peer1 (roles/lab_peer) serves the very same
records, both computed by filter_plugins/hopthu_dns.py from these settings.

The ministry's decisions (DMARC policy, MTA-STS mode, report addresses) are
policy, set once in the top-level group_vars/all.yml; which hosts are
published, under which names and addresses, and the TTL differ per
environment and are set in inventories/<env>/group_vars/all.yml
(group_vars/README.md).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from typing import Annotated, Any, Literal

from pydantic import Field

from hopthu.schema.base import CrossCheck, SettingsModel, Strict
from hopthu.schema.mailtypes import AbsolutePath
from hopthu.schema.types import DomainName, IPAddress, check_zone, checked

#: What a published host offers; filter_plugins/hopthu_dns.py SERVICES says
#: which records each service publishes.
Service = Literal["mx", "submission", "imap", "pop3", "web"]

_HOST = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def _inventory_host(value: str) -> None:
    if not _HOST.match(value):
        raise ValueError("is not an inventory host name")


InventoryHost = checked(
    str,
    "an inventory host name: letters, digits, '_', '.' and '-', e.g. mail1",
    _inventory_host,
)


def _mail_address(value: str) -> None:
    local, at, domain = value.rpartition("@")
    if not at or not local or any(c.isspace() or c in ';,!"' for c in local):
        raise ValueError("is not a mail address local@domain")
    check_zone(domain)
    if "." not in domain:
        raise ValueError("has a domain without a dot")


MailAddress = checked(
    str,
    "a mail address local@domain, e.g. postmaster@moj.gov.vn, with a lowercase domain",
    _mail_address,
)


def _seconds(low: int, high: int, example: int) -> Any:
    def check(value: int) -> None:
        if not low <= value <= high:
            raise ValueError(f"is outside {low}-{high}")

    return checked(int, f"a whole number of seconds from {low} to {high}, e.g. {example}", check)


Ttl = _seconds(60, 86400, 3600)
#: RFC 8461 §3.2: at most 31557600; less than a day defeats the policy's purpose.
MaxAge = _seconds(86400, 31557600, 604800)


class PublishedHost(Strict):
    """One mail host as the Internet sees it."""

    host: InventoryHost = Field(
        description="The inventory host (its certificate, e.g. for TLSA, is found by this name)."
    )
    name: DomainName = Field(
        description="The public name, inside the mail domain: A/AAAA, MX and SRV target, PTR."
    )
    addresses: Annotated[list[IPAddress], Field(min_length=1)] = Field(
        description="The public addresses the Internet reaches the host on (A/AAAA, PTR)."
    )
    services: list[Service] = Field(
        description=(
            "What the host offers the Internet: mx (inbound SMTP), submission (465/587), "
            "imap (993), pop3 (995), web (443: MTA-STS policy, autoconfig; one host only)."
        )
    )


class DnsSettings(SettingsModel):
    """The records the ministry publishes in its zone for mail (printed by `hopthu dns`)."""

    namespace = "dns"
    is_role = False

    dns__hosts: Annotated[list[PublishedHost], Field(min_length=1)] = Field(
        description=(
            "The mail hosts the Internet sees, each {host, name, addresses, services}. The MX "
            "records name every host with the service mx; the client SRV records those with "
            "submission, imap, pop3; autoconfig, autodiscover and mta-sts point to the one "
            "host with web. Set per environment (inventories/<env>/group_vars/all.yml): the "
            "lab publishes only mail1, so that mail from the Internet lands where tests read it."
        )
    )
    dns__ttl: Ttl = Field(
        description=(
            "The TTL of every published record, in seconds. Short in the lab, so a change is "
            "seen within minutes; an hour in production."
        )
    )
    dns__dmarc_policy: Literal["none", "quarantine", "reject"] = Field(
        description=(
            "The DMARC policy (RFC 7489 §6.3 p=): what a receiver does with mail that claims "
            "the ministry's domain but fails SPF and DKIM. reject: nobody may send as the "
            "ministry (Art. 11.5: no sender spoofing)."
        )
    )
    dns__dmarc_report_address: MailAddress = Field(
        description="Where receivers send DMARC aggregate reports (rua=); it must exist."
    )
    dns__tlsrpt_report_address: MailAddress = Field(
        description="Where senders send SMTP TLS reports (RFC 8460 rua=); it must exist."
    )
    dns__mta_sts_mode: Literal["enforce", "testing", "none"] = Field(
        description=(
            "The MTA-STS policy mode (RFC 8461 §5): enforce makes senders refuse to deliver "
            "without valid TLS to a listed MX; testing only reports (TLS-RPT)."
        )
    )
    dns__mta_sts_max_age: MaxAge = Field(
        description=(
            "How long senders cache the MTA-STS policy, in seconds (RFC 8461 §3.2, at most "
            "31557600)."
        )
    )

    dns__dkim_dir: AbsolutePath = Field(
        description=(
            "The directory on the controller that keeps the public halves of the DKIM keys, "
            "one file <selector>._domainkey.<domain>.txt each: the rspamd role copies each "
            "MX host's key there on every deploy (the private key never leaves the host); "
            "`hopthu dns` prints them and the lab's DNS on peer1 serves them."
        )
    )

    def cross_checks(self) -> Iterator[CrossCheck]:
        domain = getattr(self, "hopthu__mail_domain", None)
        hosts = self.dns__hosts
        for index, entry in enumerate(hosts):
            if domain and entry.name != domain and not entry.name.endswith("." + domain):
                yield CrossCheck(
                    ("dns__hosts", index, "name"), entry.name,
                    f"is outside the mail domain {domain} (hopthu__mail_domain), whose zone "
                    f"the records are published in",
                    f"a name ending in .{domain}, e.g. {entry.host}.{domain}",
                )
        for name, count in sorted(Counter(h.name for h in hosts).items()):
            if count > 1:
                yield CrossCheck(("dns__hosts",), name, f"lists the name {name} {count} times",
                                 "each public name once")
        if not any("mx" in h.services for h in hosts):
            yield CrossCheck(("dns__hosts",), [h.name for h in hosts],
                             "has no host with the service mx: no mail could arrive",
                             "at least one host with services including mx")
        web = [h.name for h in hosts if "web" in h.services]
        if len(web) > 1:
            yield CrossCheck(("dns__hosts",), web,
                             "gives the service web to several hosts; autoconfig, autodiscover "
                             "and mta-sts name one host", "the service web on one host only")
