"""The manifest of the files hopthu manages on a host.

Every file hopthu renders starts with the managed header, whose last line is
``fingerprint: hopthu:<role>``. The manifest is found on the host by that
fingerprint, so it lists exactly what the engines wrote, whichever engine it
was: path, owner, group, mode and sha256.

Two hosts built from the same settings differ only where a template inserts
the host's own name or address. `normalise` replaces those with placeholders
before hashing, so the manifests of twins (the lab's mail1 and mail2) can be
compared line by line.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

#: Where hopthu writes files. Kept narrow so the scan stays fast: the one
#: file in /var/lib/clamav is named alone, because the official signature
#: databases beside it are hundreds of megabytes.
MANAGED_ROOTS = (
    "/etc",
    "/usr/local/lib/hopthu",
    "/usr/local/sbin",
    "/var/lib/hopthu",
    "/var/lib/clamav/hopthu.hdb",
)
FINGERPRINT = "fingerprint: hopthu:"


@dataclass(frozen=True, order=True)
class Entry:
    path: str
    owner: str
    group: str
    mode: str
    sha256: str


def remote_script(replacements: dict[str, str] | None = None) -> str:
    """A POSIX shell script that prints one manifest line per managed file.

    Each line is ``path<TAB>owner<TAB>group<TAB>mode<TAB>sha256``. The content
    is hashed after `replacements` (literal text -> placeholder) are applied
    with sed, so host-specific values do not make twins differ.
    """
    sed = " ".join(
        f"-e {shlex.quote('s/' + _sed_escape(old) + '/' + new + '/g')}"
        for old, new in sorted((replacements or {}).items(), key=lambda kv: -len(kv[0]))
    )
    roots = " ".join(MANAGED_ROOTS)
    filter_cmd = f"sed {sed}" if sed else "cat"
    return (
        f"for f in $(grep -rlF {shlex.quote(FINGERPRINT)} {roots} 2>/dev/null | sort); do "
        f'h=$({filter_cmd} "$f" | sha256sum | cut -d" " -f1); '
        f'printf "%s\\t%s\\n" "$(stat -c "%n\t%U\t%G\t%a" "$f")" "$h"; '
        "done"
    )


def _sed_escape(text: str) -> str:
    return "".join("\\" + c if c in r"/.[]*^$\&" else c for c in text)


def parse(output: str) -> list[Entry]:
    entries = []
    for line in output.splitlines():
        if not line.strip():
            continue
        path, owner, group, mode, sha = line.split("\t")
        entries.append(Entry(path, owner, group, mode.zfill(4), sha))
    return sorted(entries)


def diff(a: list[Entry], b: list[Entry]) -> list[str]:
    """Human-readable differences between two manifests (empty if equal)."""
    by_path_a = {e.path: e for e in a}
    by_path_b = {e.path: e for e in b}
    out = []
    for path in sorted(set(by_path_a) | set(by_path_b)):
        ea, eb = by_path_a.get(path), by_path_b.get(path)
        if ea is None:
            out.append(f"{path}: only on the second host")
        elif eb is None:
            out.append(f"{path}: only on the first host")
        elif ea != eb:
            fields = [f for f in ("owner", "group", "mode", "sha256") if getattr(ea, f) != getattr(eb, f)]
            out.append(
                f"{path}: differs in {', '.join(fields)}: "
                + "; ".join(f"{f} {getattr(ea, f)} != {getattr(eb, f)}" for f in fields)
            )
    return out
