"""The settings of the `postfix` role: the MTA (roles/postfix/defaults/main.yml)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Literal

from pydantic import Field

from hopthu.schema.base import CrossCheck, SettingsModel
from hopthu.schema.mailtypes import (
    Bytes,
    OptionalPostfixEndpoint,
    PostfixEndpoint,
    SaslPath,
)
from hopthu.schema.types import Cidr, DebianPackage, DomainName, checked

_MILTER = re.compile(r"^(unix:/[A-Za-z0-9/._-]+|inet:[a-z0-9.-]+:[0-9]{1,5})$")


def _milter(value: str) -> None:
    if not _MILTER.match(value):
        raise ValueError("is not a milter endpoint")


Milter = checked(
    str, "a milter endpoint inet:HOST:PORT or unix:/PATH, e.g. inet:127.0.0.1:11332", _milter
)

_DNSBL = re.compile(r"^[a-z0-9.-]+\.[a-z]{2,}(=[0-9.;]+)?(\*-?[0-9]+)?$")


def _dnsbl(value: str) -> None:
    if not _DNSBL.match(value):
        raise ValueError("is not a postscreen_dnsbl_sites entry")


DnsblSite = checked(
    str,
    "a DNSBL zone with an optional =filter and *weight, as postscreen_dnsbl_sites takes it, "
    "e.g. zen.spamhaus.org*3 or list.dnswl.org=127.0.[0..255].[1..3]*-2",
    _dnsbl,
)

class PostfixSettings(SettingsModel):
    """Postfix: the MX (port 25, postscreen) and the submission service (587, 465).

    It accepts mail for the ministry's domains from the Internet, relays only
    for authenticated users, who may send only as their own addresses, hands
    local mail to Dovecot over LMTP, and sends outbound mail with DANE.
    roles/postfix/README.md explains each decision.
    """

    namespace = "postfix"

    postfix__packages: list[DebianPackage] = Field(
        description="Postfix and its SQLite lookup tables (postfix-sqlite)."
    )
    postfix__myhostname: DomainName = Field(
        description=(
            "The host's mail name: its HELO name and the name in its greeting. The DNS must "
            "give it an A record and the host's address a PTR back to it."
        )
    )
    postfix__mynetworks: list[Cidr] = Field(
        min_length=1,
        description=(
            "Clients Postfix trusts without authentication. Only loopback: internal clients "
            "authenticate on 587 like everyone else (Art. 11.5, no open relay)."
        ),
    )
    postfix__inet_protocols: Literal["all", "ipv4", "ipv6"] = Field(
        description="The IP versions Postfix listens and connects on."
    )
    postfix__message_size_limit: Bytes = Field(
        description=(
            "The largest message Postfix accepts, in bytes (Art. 7: documents are sent by "
            "mail). Attachments grow by a third in base64: 50 MiB carries about 36 MiB of files."
        )
    )
    postfix__mailbox_size_limit: Bytes = Field(
        description=(
            "The largest local mbox (system mail to root in /var/mail), in bytes; 0 is "
            "unlimited. Must be 0 or at least postfix__message_size_limit."
        )
    )
    postfix__recipient_delimiter: Literal["", "+", "-"] = Field(
        description=(
            "The address extension separator (an+tag@): the same as Dovecot's, so a tagged "
            "address reaches the mailbox."
        )
    )
    postfix__dovecot_lmtp: PostfixEndpoint = Field(
        description=(
            "Where Postfix delivers local mail: Dovecot's LMTP socket in its queue directory on "
            "a host that runs both, inet:STORE:24 when the store is another host."
        )
    )
    postfix__lmtp_concurrency_limit: int = Field(
        ge=1,
        description=(
            "How many LMTP deliveries to Dovecot run at once "
            "(lmtp_destination_concurrency_limit); at most "
            "dovecot__lmtp_user_concurrency_limit, or a burst to one mailbox is deferred."
        ),
    )
    postfix__dovecot_sasl_path: SaslPath = Field(
        description="Where Postfix asks Dovecot to check a submission login (SASL)."
    )
    postfix__dovecot_quota_status: OptionalPostfixEndpoint = Field(
        description=(
            "Dovecot's quota-status policy service: a full mailbox is refused at RCPT time "
            "instead of bounced after acceptance. Empty turns the check off."
        )
    )
    postfix__smtpd_milters: list[Milter] = Field(
        description=(
            "Milters every message passes, on port 25, 587 and 465 and for local mail: "
            "Rspamd's proxy on the MX hosts (group_vars/mail_mx.yml). Empty: no milter."
        )
    )
    postfix__postscreen_dnsbl_sites: list[DnsblSite] = Field(
        description=(
            "DNS blocklists postscreen consults on port 25, with weights. Empty in the lab, "
            "which has no Internet; the data centre chooses its lists."
        )
    )
    postfix__postscreen_dnsbl_threshold: int = Field(
        ge=1, description="The total weight at which postscreen refuses a client."
    )
    postfix__smtp_tls_security_level: Literal["dane", "may", "encrypt"] = Field(
        description=(
            "Outbound TLS: dane (verified TLS where the destination publishes TLSA records in "
            "signed DNS, else opportunistic; needs the local validating resolver), may or "
            "encrypt."
        )
    )

    def cross_checks(self) -> Iterator[CrossCheck]:
        limit = self.postfix__mailbox_size_limit
        if limit and limit < self.postfix__message_size_limit:
            yield CrossCheck(
                ("postfix__mailbox_size_limit",), limit,
                f"is smaller than postfix__message_size_limit = "
                f"{self.postfix__message_size_limit}, so Postfix would refuse to start",
                f"0 (unlimited) or at least {self.postfix__message_size_limit}",
            )
        milter_bind = getattr(self, "rspamd__milter_bind", None)
        for index, milter in enumerate(self.postfix__smtpd_milters):
            local = milter.startswith(("unix:", "inet:127.", "inet:localhost:"))
            if local and milter_bind is None:
                yield CrossCheck(
                    ("postfix__smtpd_milters", index), milter,
                    "names a milter on this host, but Rspamd (the rspamd role) does not run "
                    "here, so every message would wait with 451 4.7.1",
                    "[] on a host without Rspamd, or a milter on another host",
                )
            elif local and milter.startswith("inet:") and milter != f"inet:{milter_bind}":
                yield CrossCheck(
                    ("postfix__smtpd_milters", index), milter,
                    f"is not Rspamd's milter address on this host (rspamd__milter_bind = "
                    f"{milter_bind}), so every message would wait with 451 4.7.1",
                    f"inet:{milter_bind}",
                )
        if getattr(self, "dovecot__packages", None) is None:
            for key in ("postfix__dovecot_lmtp", "postfix__dovecot_sasl_path",
                        "postfix__dovecot_quota_status"):
                value = getattr(self, key)
                if "private/" in value:
                    yield CrossCheck(
                        (key,), value,
                        "names a socket of a local Dovecot, but Dovecot (the dovecot role) does "
                        "not run on this host",
                        "inet:STORE_HOST:PORT of the mailbox store",
                    )
