"""The settings of the `clamav` role: the virus scanner (roles/clamav/defaults/main.yml)."""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterator
from typing import Any

from pydantic import Field

from hopthu.schema.base import CrossCheck, SettingsModel
from hopthu.schema.mailtypes import AbsolutePath
from hopthu.schema.project import start_limit_check
from hopthu.schema.types import DebianPackage, HttpUrl, RestartSeconds, checked

#: The directory Debian's clamav-daemon units create for clamd (extend.conf's
#: ExecStartPre, the socket unit's ListenStream); clamd's socket must be in it.
CLAMD_SOCKET_DIR = "/run/clamav"

# --- Sizes ------------------------------------------------------------------------------

#: ClamAV cannot scan a file over 2 GB (clamd.conf(5), MaxFileSize).
_CLAM_MAX = 2**31 - 1
_CLAM_MIN = 2**20


def _clam_size(value: int) -> None:
    if value == 0:
        raise ValueError("is 0, which turns the limit off; hopthu keeps every limit bounded")
    if not _CLAM_MIN <= value <= _CLAM_MAX:
        raise ValueError("is outside 1 MiB to 2 GiB - 1, the sizes ClamAV can scan")


ClamSize = checked(
    int,
    "a whole number of bytes from 1048576 (1 MiB) to 2147483647 (2 GiB - 1, the largest "
    "file ClamAV can scan), e.g. 52428800 for 50 MiB",
    _clam_size,
)

# --- Counts -----------------------------------------------------------------------------


def _count(low: int, high: int, what: str) -> Any:
    def check(value: int) -> None:
        if not low <= value <= high:
            raise ValueError(f"is outside {low}-{high}")

    return checked(int, f"a whole number from {low} to {high}: {what}", check)


FreshclamChecks = _count(1, 50, "checks a day, the range freshclam accepts (Checks)")
RecursionLevels = _count(1, 64, "levels of archives inside archives, e.g. 16")
ArchiveFiles = _count(1, 100000, "files scanned inside one archive, e.g. 10000")
ScanThreads = _count(1, 256, "scans clamd runs at once, e.g. 10")

# --- Signatures -------------------------------------------------------------------------

# ClamAV's hash signatures (.hdb): HASH:SIZE:NAME, HASH an MD5, SHA1 or SHA256
# of the whole file in lower-case hex, SIZE its size in bytes. A "*" size
# needs a functionality-level field, so it is not offered here.
_HDB = re.compile(r"^(?:[0-9a-f]{32}|[0-9a-f]{40}|[0-9a-f]{64}):[0-9]+:[A-Za-z0-9._-]+$")


def _hdb(value: str) -> None:
    if _HDB.match(value):
        return
    head, _, rest = value.partition(":")
    hint = ""
    if _HDB.match(f"{head.lower()}:{rest}"):
        hint = f"; write the hash in lower case: {head.lower()}:{rest}"
    elif rest.startswith("*:"):
        hint = "; give the file's size in bytes (a '*' size needs a functionality level)"
    raise ValueError(f"is not a ClamAV hash signature line HASH:SIZE:NAME{hint}")


HashSignature = checked(
    str,
    "a ClamAV hash signature (.hdb) line HASH:SIZE:NAME: the lower-case hex MD5, SHA1 or "
    "SHA256 of the whole file, its size in bytes and a name of letters, digits, '.', '_' "
    "and '-', e.g. 44d88612fea8a8f36de82e1278abb02f:68:Eicar-Test-Signature",
    _hdb,
)


class ClamavSettings(SettingsModel):
    """ClamAV: clamd, the virus scanner Rspamd's antivirus module calls, and freshclam.

    clamd listens on a local unix socket and scans what Rspamd sends it, within
    bounded sizes; its signatures come from a private mirror inside the data
    centre (freshclam), or, in the lab, from a small custom database.
    roles/clamav/README.md explains each decision and the memory it needs.
    """

    namespace = "clamav"

    clamav__packages: list[DebianPackage] = Field(
        description=(
            "clamd and clamconf (clamav-daemon), freshclam (clamav-freshclam) and clamdscan, "
            "an operator's check that clamd answers."
        )
    )
    clamav__clamd_socket: AbsolutePath = Field(
        description=(
            "clamd's unix socket, where Rspamd's antivirus module sends each message "
            f"(INSTREAM). In {CLAMD_SOCKET_DIR}, the directory Debian's units create for it."
        )
    )
    clamav__freshclam_private_mirrors: list[HttpUrl] = Field(
        description=(
            "The data centre's mirrors of the signature databases (freshclam PrivateMirror), "
            "tried in order; the hosts have no Internet. Empty: freshclam is stopped and "
            "disabled, and clamd scans with clamav__custom_signatures only."
        )
    )
    clamav__freshclam_checks: FreshclamChecks = Field(
        description="How many times a day freshclam asks the mirror for new signatures.",
    )
    clamav__freshclam_test_databases: bool = Field(
        description=(
            "Whether freshclam loads a downloaded database in a test engine before it "
            "replaces the old one (TestDatabases): a broken download never reaches clamd, at "
            "the cost of a second copy of the signatures in memory while it runs."
        )
    )
    clamav__custom_signatures: list[HashSignature] = Field(
        description=(
            "The ministry's own hash signatures, rendered into /var/lib/clamav/hopthu.hdb; "
            "clamd reports a match as NAME.UNOFFICIAL."
        )
    )
    clamav__stream_max_length: ClamSize = Field(
        description=(
            "The largest stream clamd accepts from Rspamd (StreamMaxLength), in bytes. At "
            "least the largest message (postfix__message_size_limit, rspamd__max_message_size), "
            "or a large message is never scanned and waits (451) until it bounces."
        )
    )
    clamav__max_file_size: ClamSize = Field(
        description=(
            "The largest file clamd scans (MaxFileSize), the message part itself and each "
            "file inside an archive, in bytes. Larger files are passed unscanned, so it is at "
            "least the largest message (postfix__message_size_limit, rspamd__max_message_size)."
        )
    )
    clamav__max_scan_size: ClamSize = Field(
        description=(
            "How much data clamd scans for one input (MaxScanSize), archives unpacked, in "
            "bytes; at least clamav__max_file_size. Bounds the work a zip bomb causes."
        )
    )
    clamav__max_recursion: RecursionLevels = Field(
        description="How many archives inside archives clamd opens (MaxRecursion).",
    )
    clamav__max_files: ArchiveFiles = Field(
        description="How many files clamd scans inside one archive or container (MaxFiles).",
    )
    clamav__max_threads: ScanThreads = Field(
        description=(
            "How many scans clamd runs at once (MaxThreads); more wait in its queue. Each "
            "scan holds up to clamav__max_scan_size of data."
        ),
    )
    clamav__concurrent_database_reload: bool = Field(
        description=(
            "Whether clamd loads new signatures beside the old ones while it keeps scanning "
            "(ConcurrentDatabaseReload): no pause, but twice the signatures' memory (about "
            "2.4 GB with the official databases) during each reload. false: scans wait during "
            "the reload and mail with attachments is deferred (451) meanwhile."
        )
    )

    clamav__restart_sec: RestartSeconds = Field(
        description=(
            "Seconds before systemd starts clamd again after it died (RestartSec=). Longer "
            "than hopthu__service_restart_sec: without signatures yet (a first freshclam "
            "download still running) clamd exits at once, and the tries, within the start "
            "limit, wait for the download."
        )
    )

    def cross_checks(self) -> Iterator[CrossCheck]:
        burst = getattr(self, "hopthu__service_start_limit_burst", None)
        interval = getattr(self, "hopthu__service_start_limit_interval_sec", None)
        if burst is not None and interval is not None:
            problem = start_limit_check("clamav__restart_sec", self.clamav__restart_sec,
                                        burst, interval)
            if problem is not None:
                yield problem
        socket_dir = posixpath.dirname(self.clamav__clamd_socket)
        if socket_dir != CLAMD_SOCKET_DIR:
            yield CrossCheck(
                ("clamav__clamd_socket",), self.clamav__clamd_socket,
                f"is in {socket_dir}, but Debian's clamav-daemon units create only "
                f"{CLAMD_SOCKET_DIR} for clamd",
                f"a socket in {CLAMD_SOCKET_DIR}, e.g. {CLAMD_SOCKET_DIR}/clamd.ctl",
            )
        if not self.clamav__freshclam_private_mirrors and not self.clamav__custom_signatures:
            yield CrossCheck(
                ("clamav__freshclam_private_mirrors",), self.clamav__freshclam_private_mirrors,
                "is empty and so is clamav__custom_signatures: clamd would have no signatures "
                "and could not start, and every message Rspamd sends it would wait (451)",
                "the URL of the data centre's ClamAV mirror, e.g. "
                "['http://clamav.dc.example.net'], or signatures in clamav__custom_signatures",
            )
        if self.clamav__max_scan_size < self.clamav__max_file_size:
            yield CrossCheck(
                ("clamav__max_scan_size",), self.clamav__max_scan_size,
                f"is smaller than clamav__max_file_size = {self.clamav__max_file_size}: part "
                "of a file clamd accepts would go unscanned",
                f"at least {self.clamav__max_file_size}",
            )
        yield from self._message_checks()

    def _message_checks(self) -> Iterator[CrossCheck]:
        """Against the other roles on the host: the largest input Rspamd sends, its socket."""
        largest = [
            (getattr(self, key, None), key)
            for key in ("postfix__message_size_limit", "rspamd__max_message_size")
        ]
        known = [(value, key) for value, key in largest if value is not None]
        if known:
            size, source = max(known)
            for key, why in (
                ("clamav__stream_max_length",
                 ("clamd would refuse to scan a larger message, which then waits (451) "
                  "until it bounces")),
                ("clamav__max_file_size",
                 "a message or attachment that size would be passed without a scan"),
            ):
                value = getattr(self, key)
                if value < size:
                    yield CrossCheck(
                        (key,), value,
                        f"is smaller than {source} = {size}: {why}",
                        f"at least {size}",
                    )
        socket = getattr(self, "rspamd__antivirus_socket", None)
        if socket is not None and socket != self.clamav__clamd_socket:
            yield CrossCheck(
                ("clamav__clamd_socket",), self.clamav__clamd_socket,
                f"differs from rspamd__antivirus_socket = {socket!r}: Rspamd would find no "
                "scanner and defer every message it sends to clamd (451)",
                f"the same path in both, e.g. {socket!r}",
            )
