"""The settings of the `rspamd` role: filtering, DKIM and the content policy.

roles/rspamd/defaults/main.yml documents each key; roles/rspamd/README.md
explains the decisions (Art. 2, 11.5, 11.6).
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterator
from typing import Annotated, Any, Literal

from pydantic import Field

from hopthu.schema.base import CrossCheck, SettingsModel
from hopthu.schema.mailtypes import AbsolutePath, PromFile, _absolute_path
from hopthu.schema.types import Cidr, DebianPackage, DomainName, checked

#: The milter proxy's own timeout (templates/etc/rspamd/local.d/worker-proxy.inc.j2):
#: a scan must end before it, and Postfix's milter_content_timeout (300 s) is longer.
PROXY_TIMEOUT = 120

# --- Sockets ------------------------------------------------------------------------------

_LOOPBACK = re.compile(r"^(127\.0\.0\.1|\[::1\]|localhost):([0-9]{1,5})$")


def _loopback_socket(value: str) -> None:
    match = _LOOPBACK.match(value)
    if not match:
        raise ValueError(
            "is not a loopback HOST:PORT: the Rspamd workers must not be reachable from "
            "the network (Art. 3; the firewall opens no port for them)"
        )
    if not 1 <= int(match.group(2)) <= 65535:
        raise ValueError("has a port outside 1-65535")


LoopbackSocket = checked(
    str,
    "a loopback address and port 127.0.0.1:PORT, [::1]:PORT or localhost:PORT, "
    "e.g. 127.0.0.1:11332",
    _loopback_socket,
)


def _redis_server(value: str) -> None:
    if value.startswith("/"):
        _absolute_path(value)
    else:
        _loopback_socket(value)


RedisServer = checked(
    str,
    "Redis on this host: a loopback HOST:PORT such as 127.0.0.1:6379, or the absolute path "
    "of its unix socket",
    _redis_server,
)

# --- DKIM -----------------------------------------------------------------------------------

_SELECTOR = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


def _selector(value: str) -> None:
    if not _SELECTOR.match(value):
        raise ValueError(
            "is not a single DNS label (1-63 of a-z, 0-9 and '-', not starting or ending "
            "with '-')"
        )


DkimSelector = checked(
    str,
    "a DKIM selector: one lowercase DNS label (a-z, 0-9, '-'), e.g. mx1 or mx1-2026",
    _selector,
)

# --- Texts and patterns -----------------------------------------------------------------------


def _smtp_text(value: str) -> None:
    # The text goes into the SMTP reply (RFC 5321 §4.2: printable US-ASCII;
    # SMTPUTF8 is off) and into a double-quoted UCL string.
    if not value.strip():
        raise ValueError("is empty")
    bad = sorted({c for c in value if not " " <= c <= "~" or c in '"\\$'})
    if bad:
        raise ValueError(
            f"has the characters {''.join(bad)!r}: an SMTP reply carries printable ASCII only "
            f"(write Vietnamese without diacritics), and no '\"', '\\' or '$'"
        )
    if len(value) > 400:
        raise ValueError("is longer than 400 characters")


SmtpText = checked(
    str,
    "one line of printable ASCII (the SMTP reply text, RFC 5321), without '\"', '\\' or '$', "
    "at most 400 characters",
    _smtp_text,
)

_PATTERN = re.compile(r"^/(.+)/([imsxuOrL]*)$")


def _pattern(value: str) -> None:
    match = _PATTERN.match(value)
    if not match:
        raise ValueError("is not /REGEXP/FLAGS")
    if "\n" in value or "\r" in value:
        raise ValueError("has a line break")
    if "#" in value:
        raise ValueError("has '#', which starts a comment in an Rspamd map; write \\x23")
    if not unicodedata.is_normalized("NFC", value):
        raise ValueError(
            "is not in Unicode NFC; write it precomposed, as the mail text is compared "
            "after decoding (TCVN 6909, Art. 9)"
        )


ContentPattern = checked(
    str,
    "a regular expression as an Rspamd map reads it, /REGEXP/FLAGS (flags from i, m, s, x, "
    "u, O, r, L), on one line, without '#', e.g. /mat khau.*het han/i",
    _pattern,
)

_RATE = re.compile(r"^[0-9]+(\.[0-9]+)?[kmg]? */ *[0-9]+(\.[0-9]+)?[smhd]?$")


def _rate(value: str) -> None:
    if not _RATE.match(value):
        raise ValueError("is not COUNT / PERIOD")


Rate = checked(
    str,
    "COUNT / PERIOD as Rspamd's ratelimit reads it, the period a number with s, m "
    "(minutes), h or d, e.g. '200 / 1h'",
    _rate,
)

_EXTENSION = re.compile(r"^[a-z0-9]{1,12}$")


def _extension(value: str) -> None:
    if not _EXTENSION.match(value):
        hint = f"; write {value.lower().lstrip('.')!r}" if _EXTENSION.match(
            value.lower().lstrip(".")) else ""
        raise ValueError(f"is not a file extension{hint}")


FileExtension = checked(
    str,
    "a file name extension without the dot, lower case a-z and 0-9 (matched in any case), "
    "e.g. exe or docm",
    _extension,
)


def _positive(what: str, example: int) -> Any:
    def check(value: int) -> None:
        if value < 1:
            raise ValueError("is not above zero")

    return checked(int, f"a whole number of {what} above zero, e.g. {example}", check)


Score = _positive("points (Rspamd's score)", 15)
Seconds = _positive("seconds", 60)
MessageBytes = _positive("bytes", 67108864)


def _metrics_interval(value: int) -> None:
    if not 10 <= value <= 300:
        raise ValueError("is outside 10-300")


MetricsInterval = checked(
    int, "a whole number of seconds from 10 to 300, e.g. 30", _metrics_interval
)


class RspamdSettings(SettingsModel):
    """Rspamd: spam and virus filtering, DKIM/ARC signing, SPF/DKIM/DMARC checks, content policy.

    Postfix's milter for the MX (port 25) and submission (587, 465): it
    scores mail, rejects viruses (through clamd), blocked attachment types
    and banned content with a reason, signs the ministry's mail with DKIM and
    ARC, enforces DMARC on mail from the Internet and limits how many
    recipients an account may send to. It writes only /etc/rspamd/local.d/
    and /etc/rspamd/override.d/. roles/rspamd/README.md explains each decision.
    """

    namespace = "rspamd"

    rspamd__packages: list[DebianPackage] = Field(
        description=(
            "Rspamd, and openssl, which derives each DKIM key's public record on the host."
        )
    )
    rspamd__milter_bind: LoopbackSocket = Field(
        description=(
            "Where the milter (the rspamd_proxy worker) listens; Postfix's smtpd_milters "
            "names it (group_vars/mail_mx.yml). Loopback: Postfix runs on the same host."
        )
    )
    rspamd__controller_bind: LoopbackSocket = Field(
        description=(
            "Where the controller (web interface, learning, statistics) listens. Loopback "
            "only, with a password generated on the host (roles/rspamd/README.md)."
        )
    )
    rspamd__metrics_textfile: PromFile = Field(
        description=(
            "Where the filter health collector writes Rspamd's metrics (its controller's "
            "/metrics) and whether Rspamd and clamd answer, for the node exporter's textfile "
            "collector: a *.prom file in node_exporter__textfile_dir."
        )
    )
    rspamd__metrics_interval_sec: MetricsInterval = Field(
        description=(
            "Seconds between two runs of the filter health collector (its systemd timer)."
        )
    )
    rspamd__redis_servers: RedisServer = Field(
        description="Where Rspamd finds Redis (roles/redis): the same host, on loopback."
    )
    rspamd__local_addrs: Annotated[list[Cidr], Field(min_length=1)] = Field(
        description=(
            "Networks Rspamd treats as local (no SPF or DMARC check, signed like "
            "authenticated mail): loopback only, like postfix__mynetworks. The internal "
            "network authenticates like everyone else (Art. 11.5)."
        )
    )
    rspamd__action_reject: Score = Field(
        description="The score from which mail is refused (554 5.7.1).",
    )
    rspamd__action_add_header: Score = Field(
        description=(
            "The score from which mail is delivered with 'X-Spam: Yes', which files it into "
            "Junk (Dovecot's global Sieve script)."
        )
    )
    rspamd__action_greylist: Score = Field(
        description=(
            "The score from which mail is greylisted (451 4.7.1, the sender retries) when "
            "rspamd__greylisting_enabled is true."
        )
    )
    rspamd__greylisting_enabled: bool = Field(
        description=(
            "Whether suspicious mail (score from rspamd__action_greylist) from a sender not "
            "seen before is deferred once. Off in the lab, whose tests need prompt delivery."
        )
    )
    rspamd__gtube_patterns: Literal["reject", "all"] = Field(
        description=(
            "Which GTUBE test patterns Rspamd honours: reject (the standard GTUBE string is "
            "refused; the default) or all (also the patterns that force add-header, rewrite-"
            "subject and no action, so the lab can test each action; never in production, "
            "where they let anyone bypass the filter)."
        )
    )
    rspamd__symbol_weights: dict[
        Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")],
        dict[Annotated[str, Field(pattern=r"^[A-Z][A-Z0-9_]*$")], float],
    ] = Field(
        description=(
            "Symbol weights that differ from Rspamd's, by the group Rspamd defines each in "
            "(/etc/rspamd/scores.d/<group>_group.conf): group -> SYMBOL -> weight "
            "(local.d/groups.conf). R_MIXED_CHARSET (group headers) is 0 because Vietnamese "
            "text trips it."
        )
    )
    rspamd__bayes_autolearn: bool = Field(
        description=(
            "Whether Bayes also learns by itself from clearly spam (rejected) and clearly "
            "ham mail. Off: it learns only what users file into or out of Junk."
        )
    )
    rspamd__bayes_expire: Seconds = Field(
        description=(
            "How long a learned Bayes token lives without being seen again, in seconds "
            "(bayes_expiry); keeps the Bayes data in Redis bounded."
        )
    )
    rspamd__dkim_domains: Annotated[list[DomainName], Field(min_length=1)] = Field(
        description=(
            "The domains whose mail is signed with DKIM (and ARC): the mail domain "
            "(hopthu__mail_domain) and any other ministry domain the user database serves."
        )
    )
    rspamd__dkim_selector: DkimSelector = Field(
        description=(
            "This host's DKIM selector. One per host: each MX host signs with its own key, "
            "made on the host, and each key is published under its own selector. A new "
            "selector makes a new key (rotation, roles/rspamd/README.md)."
        )
    )
    rspamd__dkim_key_bits: Literal[2048, 3072, 4096] = Field(
        description=(
            "The size of a new DKIM RSA key, in bits (RFC 8301: at least 1024; 2048 fits "
            "every DNS provider's TXT records). Existing keys are kept."
        )
    )
    rspamd__dmarc_enforce: bool = Field(
        description=(
            "Whether mail from the Internet that fails DMARC is refused or filed as spam as "
            "the sender domain's policy asks (p=reject, p=quarantine); false only scores it."
        )
    )
    rspamd__ratelimit_user_burst: Annotated[int, Field(ge=1)] = Field(
        description=(
            "How many recipients one authenticated user may send to in a burst before the "
            "rate limit answers 451 (a stolen account cannot flood, Art. 11.5)."
        )
    )
    rspamd__ratelimit_user_rate: Rate = Field(
        description=(
            "How fast the burst allowance refills: recipients per period for one "
            "authenticated user."
        )
    )
    rspamd__dns_blocklists_enabled: bool = Field(
        description=(
            "Whether Rspamd asks public DNS blocklists (the rbl module: Spamhaus, SURBL, "
            "URIBL, mailspike...; the emails and asn modules). Needs Internet DNS through the "
            "local resolver. Off in the lab and staging, which have no Internet."
        )
    )
    rspamd__internet_services_enabled: bool = Field(
        description=(
            "Whether Rspamd uses services on the Internet beyond DNS: the public fuzzy "
            "storage (UDP 11335 to rspamd.com) and URL redirector resolution (HTTP). Off "
            "where the data centre has no outbound access."
        )
    )
    rspamd__antivirus_socket: AbsolutePath = Field(
        description=(
            "clamd's socket, which Rspamd's antivirus module calls (the clamav role's "
            "LocalSocket, Debian's /run/clamav/clamd.ctl)."
        )
    )
    rspamd__antivirus_timeout: Seconds = Field(
        description=(
            "How long one clamd scan may take, in seconds; with one retry it must fit twice "
            "in rspamd__task_timeout."
        )
    )
    rspamd__task_timeout: Seconds = Field(
        description=(
            "How long Rspamd may take for one message, in seconds. On timeout the message "
            "is refused temporarily (451), never accepted unscanned."
        )
    )
    rspamd__max_message_size: MessageBytes = Field(
        description=(
            "The largest message Rspamd accepts, in bytes; above postfix__message_size_limit "
            "with room for the headers Postfix adds, so every message Postfix accepts is "
            "scanned."
        )
    )
    rspamd__blocked_extensions: Annotated[list[FileExtension], Field(min_length=1)] = Field(
        description=(
            "Attachment types refused (Art. 11.6): by file name extension, in any case, also "
            "for files inside archives (zip, rar, 7z) and for content detected as such."
        )
    )
    rspamd__blocked_attachment_message: SmtpText = Field(
        description="The SMTP reply for a refused attachment: it tells the sender why."
    )
    rspamd__banned_subject_patterns: list[ContentPattern] = Field(
        description="Regular expressions; mail whose Subject matches one is refused (Art. 11.6)."
    )
    rspamd__banned_body_patterns: list[ContentPattern] = Field(
        description=(
            "Regular expressions; mail whose decoded text matches one is refused (Art. 11.6)."
        )
    )
    rspamd__banned_content_message: SmtpText = Field(
        description="The SMTP reply for mail refused for a banned pattern: it tells the sender why."
    )

    def cross_checks(self) -> Iterator[CrossCheck]:
        greylist = self.rspamd__action_greylist
        add_header = self.rspamd__action_add_header
        reject = self.rspamd__action_reject
        if not greylist < add_header < reject:
            yield CrossCheck(
                ("rspamd__action_add_header",), add_header,
                f"does not lie between rspamd__action_greylist = {greylist} and "
                f"rspamd__action_reject = {reject}",
                "rspamd__action_greylist < rspamd__action_add_header < rspamd__action_reject, "
                "e.g. 4, 6 and 15",
            )
        timeout = self.rspamd__task_timeout
        scan = self.rspamd__antivirus_timeout
        if timeout < 2 * scan:
            yield CrossCheck(
                ("rspamd__antivirus_timeout",), scan,
                f"twice (one retry) does not fit in rspamd__task_timeout = {timeout}, so a slow "
                f"scan would end the task before clamd answers",
                f"at most {timeout // 2} (half of rspamd__task_timeout)",
            )
        if timeout >= PROXY_TIMEOUT:
            yield CrossCheck(
                ("rspamd__task_timeout",), timeout,
                f"is not below the milter proxy's timeout of {PROXY_TIMEOUT} s",
                f"fewer than {PROXY_TIMEOUT} seconds",
            )
        domain = getattr(self, "hopthu__mail_domain", None)
        if domain and domain not in self.rspamd__dkim_domains:
            yield CrossCheck(
                ("rspamd__dkim_domains",), self.rspamd__dkim_domains,
                f"lacks the mail domain {domain} (hopthu__mail_domain): the ministry's own "
                f"mail would go out unsigned and fail DMARC",
                f"a list that includes {domain!r}",
            )
        for key in ("rspamd__dkim_domains", "rspamd__blocked_extensions"):
            for value, count in sorted(Counter(getattr(self, key)).items()):
                if count > 1:
                    yield CrossCheck((key,), value, f"lists {value} {count} times",
                                     "each value once")
        size = getattr(self, "postfix__message_size_limit", None)
        if size is not None and self.rspamd__max_message_size < size + 1048576:
            yield CrossCheck(
                ("rspamd__max_message_size",), self.rspamd__max_message_size,
                f"leaves less than 1 MiB above postfix__message_size_limit = {size}: the "
                f"largest messages Postfix accepts would not be scanned",
                f"at least {size + 1048576}",
            )
        textfile_dir = getattr(self, "node_exporter__textfile_dir", None)
        if textfile_dir is not None and \
                self.rspamd__metrics_textfile.rsplit("/", 1)[0] != textfile_dir:
            yield CrossCheck(
                ("rspamd__metrics_textfile",), self.rspamd__metrics_textfile,
                f"is not in node_exporter__textfile_dir = {textfile_dir!r}, so the node "
                "exporter would never publish Rspamd's and clamd's health",
                f"a .prom file in {textfile_dir}, e.g. {textfile_dir}/hopthu_filter.prom",
            )
        port = getattr(self, "redis__port", None)
        server = self.rspamd__redis_servers
        if port is not None and not server.startswith("/") and \
                server.rsplit(":", 1)[1] != str(port):
            yield CrossCheck(
                ("rspamd__redis_servers",), server,
                f"names another port than Redis listens on (redis__port = {port})",
                f"a loopback address with port {port}, e.g. 127.0.0.1:{port}",
            )
