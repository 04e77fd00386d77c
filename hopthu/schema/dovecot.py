"""The settings of the `dovecot` role: the mailbox store (roles/dovecot/defaults/main.yml)."""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import Field

from hopthu.schema.base import CrossCheck, SettingsModel
from hopthu.schema.mailtypes import Bytes, MailAddress, Percent, StaticId
from hopthu.schema.types import DebianPackage, DomainName, Port, checked


def _port_or_off(value: int) -> None:
    if value != 0 and not 1 <= value <= 65535:
        raise ValueError("is not 0 (off) or a port number")


PortOrOff = checked(int, "0 (off) or a port number from 1 to 65535, e.g. 24", _port_or_off)


class DovecotSettings(SettingsModel):
    """Dovecot: IMAPS, POP3S, LMTP delivery, Sieve and ManageSieve, quota.

    One settings model, rendered as Dovecot 2.4 configuration on Debian 13
    and as 2.3 configuration on Debian 12. Mail is stored as Maildir under
    one system user, vmail, in dovecot__vmail_dir/<domain>/<user>; users,
    passwords and quotas come from the user database.
    """

    namespace = "dovecot"

    dovecot__packages: list[DebianPackage] = Field(
        description=(
            "Dovecot and its parts: IMAP, POP3, LMTP, Sieve and ManageSieve (Pigeonhole), and "
            "the SQLite driver of the user database. The same names on Debian 12 and 13."
        )
    )
    dovecot__hostname: DomainName = Field(
        description=(
            "The host's name in Dovecot's own headers and messages (LMTP Received lines, "
            "Message-IDs of vacation replies): the same as postfix__myhostname."
        )
    )
    dovecot__vmail_uid: StaticId = Field(
        description=(
            "The uid of vmail, the one user that owns every mailbox. Fixed, so that a restore "
            "on another host (Art. 11.7) finds the files owned by the right user."
        )
    )
    dovecot__vmail_gid: StaticId = Field(description="The gid of vmail's group.")
    dovecot__postmaster_address: MailAddress = Field(
        description="The sender of Dovecot's own messages (rejections, quota warnings)."
    )
    dovecot__auth_failure_delay: int = Field(
        ge=1,
        le=15,
        description=(
            "Seconds Dovecot waits before it answers a failed login (Art. 11.5: slows password "
            "guessing; banning repeat offenders with fail2ban is not yet built)."
        ),
    )
    dovecot__mail_max_userip_connections: int = Field(
        ge=1,
        description=(
            "IMAP connections one user may hold from one address: a desktop client opens "
            "several, and a unit mailbox has several delegates behind one NAT."
        ),
    )
    dovecot__recipient_delimiter: str = Field(
        pattern=r"^[+-]?$",
        description="The address extension separator; the same as postfix__recipient_delimiter.",
    )
    dovecot__lmtp_user_concurrency_limit: int = Field(
        ge=0,
        description=(
            "How many deliveries to one mailbox LMTP accepts at once (0: no limit). At least "
            "the sum of postfix__lmtp_concurrency_limit over the Postfix hosts that deliver "
            "here, or a burst to one mailbox is deferred with 451 4.3.0."
        ),
    )
    dovecot__quota_warning_percentages: list[Percent] = Field(
        description=(
            "The fill levels, in percent of the quota, at which the user gets a warning mail "
            "(in any order: the template sorts them, as Dovecot runs only the first match)."
        )
    )
    dovecot__quota_full_tempfail: bool = Field(
        description=(
            "Whether a full mailbox answers with a temporary error (452 4.2.2: the sender "
            "retries for days while the user makes room) rather than a permanent one (552)."
        )
    )
    dovecot__quota_grace: Bytes = Field(
        description=(
            "How far the last delivered message may take a mailbox over its quota, in bytes, "
            "so that a message just under the limit is not split from its thread."
        )
    )
    dovecot__postfix_local: bool = Field(
        description=(
            "Whether Postfix runs on this host (sockets in its queue directory). false on a "
            "store-only host: Postfix reaches LMTP, auth and quota-status over the network."
        )
    )
    dovecot__lmtp_port: PortOrOff = Field(
        description=(
            "LMTP over TCP for a Postfix on another host; 0 turns it off. Plain text on the "
            "internal network: the firewall opens it to the internal zone only."
        )
    )
    dovecot__auth_port: PortOrOff = Field(
        description="SASL auth over TCP for a Postfix on another host; 0 turns it off."
    )
    dovecot__quota_status_port: PortOrOff = Field(
        description="The quota-status policy service over TCP; 0 turns it off."
    )
    dovecot__imaps_port: Port = Field(description="IMAP over implicit TLS (RFC 8314).")
    dovecot__pop3s_port: Port = Field(description="POP3 over implicit TLS (RFC 8314).")
    dovecot__managesieve_port: Port = Field(
        description="ManageSieve (RFC 5804): users edit their filters and vacation replies."
    )

    def cross_checks(self) -> Iterator[CrossCheck]:
        if not self.dovecot__postfix_local and not self.dovecot__lmtp_port:
            yield CrossCheck(
                ("dovecot__lmtp_port",), self.dovecot__lmtp_port,
                "is 0 while dovecot__postfix_local is false, so no Postfix could deliver here",
                "the LMTP port the MX hosts use (24), or dovecot__postfix_local: true",
            )
        lmtp = getattr(self, "postfix__lmtp_concurrency_limit", None)
        limit = self.dovecot__lmtp_user_concurrency_limit
        if lmtp is not None and limit and limit < lmtp:
            yield CrossCheck(
                ("dovecot__lmtp_user_concurrency_limit",), limit,
                f"is below postfix__lmtp_concurrency_limit = {lmtp}: a burst of mail to one "
                f"mailbox would be deferred (451 4.3.0) and wait for Postfix's retry",
                f"0 (no limit) or at least {lmtp}",
            )
        delimiter = getattr(self, "postfix__recipient_delimiter", None)
        if delimiter is not None and delimiter != self.dovecot__recipient_delimiter:
            yield CrossCheck(
                ("dovecot__recipient_delimiter",), self.dovecot__recipient_delimiter,
                f"differs from postfix__recipient_delimiter = {delimiter!r}: tagged mail "
                "would not find its mailbox",
                repr(delimiter),
            )
