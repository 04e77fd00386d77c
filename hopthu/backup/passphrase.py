"""The repositories' passphrase, on the controller: checked, read, made once in the lab.

    python -m hopthu.backup.passphrase ensure --file PATH [--generate]

prints ``{"changed": bool, "file": PATH}``. The roles' "Prepare the backup
passphrase on the controller" task runs it (delegated to the controller);
the pyinfra deploy calls ``ensure`` and ``read`` directly.

The file (``backup__passphrase_file``) holds one line. It is either plain,
and then readable by its owner only (0600 or 0400), or encrypted with
ansible-vault: Ansible's ``copy`` decrypts it on the way to the hosts, and
``read`` decrypts it here with the same vault password
(``ANSIBLE_VAULT_PASSWORD_FILE``), so both engines install the same bytes.
With ``--generate`` a missing file is made: 48 random letters and digits,
0600, in a 0700 directory (the lab's git-ignored secrets/lab/). Without it a
missing file stops the deploy before any host changes, saying what to do.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import stat
import string
import sys
from pathlib import Path

#: Long enough that guessing is hopeless; letters and digits survive every shell.
LENGTH = 48
ALPHABET = string.ascii_letters + string.digits
VAULT_HEADER = "$ANSIBLE_VAULT;"


class PassphraseError(Exception):
    """The passphrase file is missing, exposed or unreadable; the message says what to do."""


def ensure(path: str | Path, *, generate: bool) -> bool:
    """Check the file, making it when allowed; True when it was made now."""
    file = Path(path)
    if not file.exists():
        if not generate:
            raise PassphraseError(
                f"{file}: the backup passphrase file does not exist. Make it on the controller "
                f"(one line, e.g. `umask 077; openssl rand -base64 36 > {file}`, or encrypt it "
                f"with `ansible-vault encrypt {file}`), keep a copy off the controller: without "
                f"it no archive can be read. Or point backup__passphrase_file at the file.")
        file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        value = "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))
        fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(value + "\n")
        return True
    read(file)
    return False


def read(path: str | Path) -> bytes:
    """The bytes the hosts get: the file, or its ansible-vault plaintext."""
    file = Path(path)
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise PassphraseError(f"{file}: cannot read the backup passphrase ({exc.strerror})") \
            from None
    if data.startswith(VAULT_HEADER.encode()):
        from hopthu.settings.files import VaultError, decrypt

        try:
            data = decrypt(data.decode("ascii")).encode("utf-8")
        except VaultError as exc:
            raise PassphraseError(f"{file}: {exc}") from None
    else:
        mode = stat.S_IMODE(file.stat().st_mode)
        if mode & 0o077:
            raise PassphraseError(
                f"{file}: the backup passphrase is readable by others (mode {mode:04o}); "
                f"`chmod 600 {file}`, or encrypt it with ansible-vault")
    text = data.decode("utf-8", errors="replace")
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) != 1 or len(lines[0].strip()) < 20:
        raise PassphraseError(
            f"{file}: the backup passphrase must be one line of at least 20 characters")
    return data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hopthu.backup.passphrase")
    sub = parser.add_subparsers(dest="action", required=True)
    ensure_parser = sub.add_parser("ensure", help="check the file; make it with --generate")
    ensure_parser.add_argument("--file", required=True)
    ensure_parser.add_argument("--generate", action="store_true")
    args = parser.parse_args(argv)
    try:
        changed = ensure(args.file, generate=args.generate)
    except PassphraseError as exc:
        print(f"hopthu backup passphrase: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({"changed": changed, "file": args.file}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
