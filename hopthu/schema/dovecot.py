"""The settings of the `dovecot` role: the mailbox store (roles/dovecot/defaults/main.yml)."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from typing import Literal

from pydantic import Field

from hopthu.schema.base import CrossCheck, SettingsModel
from hopthu.schema.mailtypes import Bytes, MailAddress, OptionalPath, Percent, StaticId
from hopthu.schema.types import DebianPackage, DomainName, Port, _dns_name, checked


def _port_or_off(value: int) -> None:
    if value != 0 and not 1 <= value <= 65535:
        raise ValueError("is not 0 (off) or a port number")


PortOrOff = checked(int, "0 (off) or a port number from 1 to 65535, e.g. 24", _port_or_off)


def _controller(value: str) -> None:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError("is not HOST:PORT with a port from 1 to 65535")
    if host.startswith("[") and host.endswith("]"):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise ValueError("has an IPv6 address in brackets that is not valid") from None
        return
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        if host in ("localhost",):
            return
        _dns_name(host, need_dot=True)


RspamdController = checked(
    str,
    "HOST:PORT of Rspamd's controller: an IPv4 address, [IPv6] or a host name, and the "
    "port, e.g. 127.0.0.1:11334",
    _controller,
)

# RFC 5322 §3.6.8: a field name is printable ASCII except ':' and space;
# hopthu allows the usual letters, digits and '-'.
_HEADER = re.compile(r"^[A-Za-z][A-Za-z0-9-]*$")


def _header(value: str) -> None:
    if not _HEADER.match(value):
        raise ValueError("is not a header field name")


#: Dovecot's ACL right names (src/plugins/acl/acl-api.h), as doveadm acl takes them.
AclRight = Literal["lookup", "read", "write", "write-seen", "write-deleted", "insert", "post",
                   "expunge", "create", "delete", "admin"]

HeaderName = checked(
    str, "a header field name of letters, digits and '-', e.g. X-Spam", _header
)


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
    dovecot__metrics_port: PortOrOff = Field(
        description=(
            "Dovecot's OpenMetrics endpoint (the stats service, http://HOST:PORT/metrics) that "
            "the monitor host scrapes; 0 turns it off. Plain HTTP without a password: the "
            "firewall opens it to the internal zone only. No metric is grouped by user."
        )
    )
    dovecot__junk_sieve: bool = Field(
        description=(
            "Whether a global Sieve script, at delivery and before the user's own filters, "
            "files mail Rspamd marked as probable spam (dovecot__junk_header: Yes) into Junk "
            "(Art. 11.6). Needs no Rspamd on the store: it reads the MX hosts' header."
        )
    )
    dovecot__junk_header: HeaderName = Field(
        description=(
            "The header Rspamd's milter adds to probable spam with the value Yes (the proxy's "
            "spam_header, X-Spam by default)."
        )
    )
    dovecot__unit_sharing: bool = Field(
        description=(
            "Whether the owner and the delegates of each unit mailbox read it over IMAP under "
            "shared/<unit>/ (a shared namespace with ACLs; hopthu-unit-acl sets the rights "
            "from the user database, Art. 13)."
        )
    )
    dovecot__unit_owner_rights: list[AclRight] = Field(
        min_length=1,
        description="The IMAP rights (RFC 4314 names) of a unit mailbox's owner on it.",
    )
    dovecot__unit_delegate_rights: list[AclRight] = Field(
        min_length=1,
        description="The IMAP rights (RFC 4314 names) of a unit mailbox's delegates on it.",
    )
    dovecot__spam_learning: bool = Field(
        description=(
            "Whether IMAPSieve teaches Rspamd from users' moves (Art. 11.6): into Junk learns "
            "spam, out of Junk (except to Trash) learns ham, through rspamc. Only where Rspamd "
            "runs on the same host: rspamc comes with the rspamd package."
        )
    )
    dovecot__rspamd_controller: RspamdController = Field(
        description="Rspamd's controller, HOST:PORT, which rspamc sends the messages to learn."
    )
    dovecot__rspamd_controller_password_file: OptionalPath = Field(
        description=(
            "The file with the controller's password, which rspamc reads (-P); the rspamd role "
            "makes it and this role lets vmail read it. \"\" only for a controller that "
            "trusts the caller's address."
        )
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
        if self.dovecot__spam_learning and getattr(self, "postfix__packages", None) is None:
            yield CrossCheck(
                ("dovecot__spam_learning",), self.dovecot__spam_learning,
                "is true on a host without the MX roles: Rspamd does not run here, and rspamc, "
                "which the learning program runs, comes only with the rspamd package; learning "
                "from a store-only host is not built yet (roles/dovecot/README.md)",
                "false on a store-only host (the junk Sieve script still works there)",
            )
        controller = getattr(self, "rspamd__controller_bind", None)
        if (self.dovecot__spam_learning and controller is not None
                and controller != self.dovecot__rspamd_controller):
            yield CrossCheck(
                ("dovecot__rspamd_controller",), self.dovecot__rspamd_controller,
                f"differs from rspamd__controller_bind = {controller!r}, where Rspamd's "
                "controller listens on this host: users' moves would teach Rspamd nothing",
                repr(controller),
            )
        for key in ("dovecot__unit_owner_rights", "dovecot__unit_delegate_rights"):
            rights = getattr(self, key)
            missing = [right for right in ("lookup", "read") if right not in rights]
            if self.dovecot__unit_sharing and missing:
                yield CrossCheck(
                    (key,), rights,
                    f"lacks {' and '.join(missing)}: without them the unit mailbox is neither "
                    "listed nor readable, which is what sharing is for",
                    "a list with at least lookup and read",
                )
        delimiter = getattr(self, "postfix__recipient_delimiter", None)
        if delimiter is not None and delimiter != self.dovecot__recipient_delimiter:
            yield CrossCheck(
                ("dovecot__recipient_delimiter",), self.dovecot__recipient_delimiter,
                f"differs from postfix__recipient_delimiter = {delimiter!r}: tagged mail "
                "would not find its mailbox",
                repr(delimiter),
            )
