"""Filters of the backup role: the public keys the deploy exchanges through the controller.

Each store host makes its own backup key (roles/backup), and the deploy
copies the public half to the controller, ``backup__keys_dir/<host>.client.pub``;
the backup host's SSH host key goes the same way, ``<host>.host.pub``. The
backup host's authorized_keys and the stores' known_hosts are rendered from
those copies, with these filters, by both engines:

    {{ backup__keys_dir | backup_client_keys(backup__clients) }}
    {{ backup__keys_dir | backup_host_key(backup__server_host) }}

A key not on the controller yet is left out (the template says which and
why); a file that is not one OpenSSH public key line raises
``BackupKeyError`` naming it. Only public keys are read: nothing here is
secret. Like every filter of filter_plugins/, the result depends only on
the arguments and the files they name.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

#: The key types a store's key or the backup host's key may be: the role
#: makes ed25519 keys, and sshd's HostKeyAlgorithms (roles/common) serves
#: ed25519.
KEY_TYPES = ("ssh-ed25519",)
CLIENT_SUFFIX = ".client.pub"
HOST_SUFFIX = ".host.pub"
_HOST = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_COMMENT = re.compile(r"^[A-Za-z0-9@._+-]*$")


class BackupKeyError(ValueError):
    """A key file on the controller is not what the backup role wrote."""


def public_key_line(text: str, where: str) -> str:
    """One OpenSSH public key, ``TYPE BASE64 [COMMENT]``, checked; the comment is kept."""
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) != 1:
        raise BackupKeyError(f"{where}: expected one public key line, found {len(lines)}")
    parts = lines[0].split()
    if len(parts) not in (2, 3) or parts[0] not in KEY_TYPES:
        raise BackupKeyError(
            f"{where}: not an OpenSSH public key of type {' or '.join(KEY_TYPES)} "
            f"('ssh-ed25519 AAAA... comment'), got {lines[0][:60]!r}")
    try:
        blob = base64.b64decode(parts[1], validate=True)
    except (binascii.Error, ValueError):
        raise BackupKeyError(f"{where}: the key is not base64") from None
    if not blob[4:].startswith(parts[0].encode()):
        raise BackupKeyError(f"{where}: the key's data is not a {parts[0]} key")
    if len(parts) == 3 and not _COMMENT.match(parts[2]):
        raise BackupKeyError(f"{where}: the comment {parts[2]!r} has characters "
                             f"authorized_keys cannot carry")
    return " ".join(parts)


def _directory(directory: Any) -> Path:
    if not isinstance(directory, str) or not directory.startswith("/"):
        raise BackupKeyError(
            f"backup__keys_dir: must be an absolute directory on the controller, "
            f"got {directory!r}")
    return Path(directory)


def _host(name: Any, where: str) -> str:
    if not isinstance(name, str) or not _HOST.match(name):
        raise BackupKeyError(f"{where}: {name!r} is not an inventory host name")
    return name


def _read(path: Path) -> str | None:
    if not path.is_file():
        return None
    try:
        return public_key_line(path.read_text(encoding="ascii"), str(path))
    except (OSError, UnicodeDecodeError) as exc:
        raise BackupKeyError(f"{path}: cannot read a public key ({exc})") from None


def client_keys(directory: Any, clients: Any) -> dict[str, str]:
    """Filter: store host -> its backup key's public line, for the stores that have one."""
    folder = _directory(directory)
    if isinstance(clients, str) or not isinstance(clients, Sequence):
        raise BackupKeyError(f"backup__clients: must be a list of host names, got {clients!r}")
    found: dict[str, str] = {}
    for client in clients:
        key = _read(folder / f"{_host(client, 'backup__clients')}{CLIENT_SUFFIX}")
        if key is not None:
            found[client] = key
    return found


def host_key(directory: Any, server: Any) -> str:
    """Filter: the backup host's SSH host key line ("" when the controller has none yet)."""
    folder = _directory(directory)
    key = _read(folder / f"{_host(server, 'backup__server_host')}{HOST_SUFFIX}")
    return key or ""


class FilterModule:
    """Ansible's entry point; hopthu.render loads it too."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {
            "backup_client_keys": client_keys,
            "backup_host_key": host_key,
        }
