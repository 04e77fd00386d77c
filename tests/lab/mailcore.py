"""Helpers of the mail core lab tests (tests/lab/test_mail_core_*.py).

Real protocol clients from the standard library, bounded by timeouts:
smtplib for SMTP, imaplib for IMAP, poplib for POP3, and a minimal
ManageSieve client (RFC 5804) for the vacation test. The client trusts only
the lab's internal CA (pki__ca_dir/ca.crt on the controller) and checks the
host's name, here its address, which the lab's certificates cover.

The controller (198.18.0.1) is an internal-zone client. Tests that must come
from the Internet zone run a small Python program on peer1 (198.18.0.130)
through `hopthu.lab.ssh_run` (`on_peer`): LAB.md, negative tests never
from loopback on mail1. The lab's test accounts and passwords are read from
the lab inventory, where the userdb role reads them.
"""

from __future__ import annotations

import base64
import contextlib
import imaplib
import json
import re
import shlex
import smtplib
import socket
import ssl
import textwrap
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest

#: The lab host under test: mail_mx and mail_store in one (inventories/lab).
HOST = "mail1"
#: Every protocol step gives up after this many seconds.
TIMEOUT = 30.0


@dataclass(frozen=True)
class Account:
    address: str
    password: str
    display_name: str
    quota: int


@cache
def lab_settings() -> dict[str, Any]:
    from hopthu.settings import load_host

    return dict(load_host("lab", HOST).values)


@cache
def address() -> str:
    from hopthu import inventory

    return inventory.load("lab").hosts[HOST].address


@pytest.fixture(scope="session")
def mail_core(converged_lab: dict[str, str]) -> str:
    """mail1, converged with the mail core roles (the session's Ansible run).

    A host that was converged but does not run Postfix and Dovecot is a
    failure, not a reason to skip: these tests are the proof of the roles.
    """
    from hopthu.lab import ssh_run

    rc, out, _ = ssh_run(HOST, "systemctl is-active postfix.service dovecot.service",
                         timeout=30)
    assert rc == 0, (
        f"{HOST} does not run Postfix and Dovecot after the deploy ({out.split()}): "
        f"see `hopthu lab ssh {HOST} journalctl -u postfix -u dovecot`"
    )
    assert ca_file().is_file(), f"no lab CA at {ca_file()} after the deploy: see roles/pki"
    return address()


def accounts() -> dict[str, Account]:
    return {
        a["address"]: Account(a["address"], a["password"], a["display_name"], a["quota"])
        for a in lab_settings()["userdb__seed_accounts"]
    }


def account(local: str) -> Account:
    return accounts()[f"{local}@{lab_settings()['hopthu__mail_domain']}"]


def ca_file() -> Path:
    return Path(lab_settings()["pki__ca_dir"]) / "ca.crt"


def tls_context() -> ssl.SSLContext:
    """Trust the lab CA only, verify the host name (its address), TLS 1.2 or later."""
    context = ssl.create_default_context(cafile=str(ca_file()))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def new_message_id() -> str:
    return f"<{uuid.uuid4().hex}@lab.test.hopthu>"


# --- SMTP ---------------------------------------------------------------------------


@contextlib.contextmanager
def submission(user: Account | None = None, *, port: int = 587) -> Iterator[smtplib.SMTP]:
    """An SMTP session on 587 (STARTTLS) or 465 (implicit TLS), logged in as `user`."""
    if port == 465:
        client: smtplib.SMTP = smtplib.SMTP_SSL(
            address(), 465, timeout=TIMEOUT, context=tls_context()
        )
    else:
        client = smtplib.SMTP(address(), port, timeout=TIMEOUT)
    try:
        client.ehlo("client.lab.test")
        if port != 465:
            client.starttls(context=tls_context())
            client.ehlo("client.lab.test")
        if user is not None:
            client.login(user.address, user.password)
        yield client
    finally:
        with contextlib.suppress(smtplib.SMTPException, OSError):
            client.quit()


def submit(user: Account, message: bytes, recipients: list[str], *, sender: str | None = None,
           port: int = 587) -> None:
    with submission(user, port=port) as client:
        refused = client.sendmail(sender or user.address, recipients, message)
    assert not refused, f"recipients refused at submission: {refused}"


# --- IMAP ---------------------------------------------------------------------------


@contextlib.contextmanager
def imap(user: Account) -> Iterator[imaplib.IMAP4_SSL]:
    client = imaplib.IMAP4_SSL(address(), 993, ssl_context=tls_context(), timeout=TIMEOUT)
    try:
        client.login(user.address, user.password)
        yield client
    finally:
        with contextlib.suppress(imaplib.IMAP4.error, OSError):
            client.logout()


def fetch_by_message_id(user: Account, message_id: str, *, mailbox: str = "INBOX",
                        timeout: float = TIMEOUT) -> list[bytes]:
    """The raw messages in `mailbox` with this Message-ID, waiting up to `timeout` for one."""
    deadline = time.monotonic() + timeout
    with imap(user) as client:
        while True:
            client.select(mailbox, readonly=True)
            _, data = client.search(None, "HEADER", "Message-ID", message_id)
            numbers = data[0].split()
            if numbers or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        found = []
        for number in numbers:
            _, parts = client.fetch(number, "(BODY.PEEK[])")
            found.append(bytes(parts[0][1]))
        return found


def wait_for(user: Account, criteria: list[str], *, mailbox: str = "INBOX",
             count: int = 1, timeout: float = TIMEOUT) -> list[bytes]:
    """Wait until `count` messages match the IMAP SEARCH `criteria`; return them all."""
    deadline = time.monotonic() + timeout
    with imap(user) as client:
        while True:
            client.select(mailbox, readonly=True)
            _, data = client.search("UTF-8", *criteria)
            numbers = data[0].split()
            if len(numbers) >= count or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        found = []
        for number in numbers:
            _, parts = client.fetch(number, "(BODY.PEEK[])")
            found.append(bytes(parts[0][1]))
        return found


def body_of(raw: bytes) -> bytes:
    """Everything after the header's blank line: what the sender wrote, as it was stored."""
    return raw.replace(b"\r\n", b"\n").split(b"\n\n", 1)[1]


# --- ManageSieve (RFC 5804), just enough for a vacation script ------------------------


class ManageSieve:
    """A ManageSieve session: STARTTLS, AUTHENTICATE PLAIN, PUTSCRIPT, SETACTIVE."""

    def __init__(self, port: int = 4190) -> None:
        self.sock: Any = socket.create_connection((address(), port), timeout=TIMEOUT)
        self.file = self.sock.makefile("rb")
        self.capabilities = self._response()[1]

    def _line(self) -> bytes:
        line = self.file.readline()
        if not line:
            raise ConnectionError("ManageSieve server closed the connection")
        return line.rstrip(b"\r\n")

    def _response(self) -> tuple[bytes, list[bytes]]:
        lines = []
        while True:
            line = self._line()
            if line.startswith((b"OK", b"NO", b"BYE")):
                return line, lines
            lines.append(line)

    def command(self, text: str) -> bytes:
        self.sock.sendall(text.encode("utf-8") + b"\r\n")
        return self._response()[0]

    def starttls(self) -> None:
        status = self.command("STARTTLS")
        assert status.startswith(b"OK"), status
        self.sock = tls_context().wrap_socket(self.sock, server_hostname=address())
        self.file = self.sock.makefile("rb")
        self.capabilities = self._response()[1]

    def sasl_mechanisms(self) -> list[str]:
        for line in self.capabilities:
            if line.startswith(b'"SASL"'):
                return line.split(b" ", 1)[1].strip(b'"').decode().split()
        return []

    def authenticate(self, user: Account) -> bytes:
        token = base64.b64encode(f"\0{user.address}\0{user.password}".encode()).decode()
        return self.command(f'AUTHENTICATE "PLAIN" "{token}"')

    def putscript(self, name: str, script: str) -> bytes:
        data = script.encode("utf-8")
        self.sock.sendall(f'PUTSCRIPT "{name}" {{{len(data)}+}}\r\n'.encode() + data + b"\r\n")
        return self._response()[0]

    def close(self) -> None:
        with contextlib.suppress(OSError, ConnectionError):
            self.command("LOGOUT")
        self.sock.close()


# --- Commands on the lab hosts ----------------------------------------------------------


def on_host(host: str, command: str, *, timeout: float = 120.0) -> str:
    """Run a shell command on a lab host as root; fail the test if it fails."""
    from hopthu.lab import ssh_run

    rc, out, err = ssh_run(host, command, timeout=timeout)
    assert rc == 0, f"{host}: `{command}` exited {rc}:\n{err or out}"
    return out


def on_peer(program: str, *, timeout: float = 90.0) -> Any:
    """Run a Python program on peer1 ("the Internet"); return the JSON it prints last.

    The program sees TARGET (mail1's address) and prints its result with
    `print(json.dumps(...))`.
    """
    source = f"TARGET = {address()!r}\n" + textwrap.dedent(program)
    out = on_host("peer1", f"timeout {int(timeout)} python3 -c {shlex.quote(source)}",
                  timeout=timeout + 15)
    return json.loads(out.strip().splitlines()[-1])


#: A Python helper for on_peer programs: one SMTP exchange, every reply kept.
PEER_SMTP = """
import json, smtplib
def exchange(port, commands, helo="peer1.peer.test"):
    s = smtplib.SMTP(TARGET, port, timeout=30)
    code, text = s.ehlo(helo)
    replies = [[code, text.decode("utf-8", "replace")]]
    for command in commands:
        code, text = s.docmd(command)
        replies.append([code, text.decode("utf-8", "replace")])
    try:
        s.quit()
    except Exception:
        pass
    return replies
"""


def reply_code(text: str | bytes) -> int:
    match = re.match(rb"\s*(\d{3})", text if isinstance(text, bytes) else text.encode())
    return int(match.group(1)) if match else 0


#: The store's user database (roles/accounts).
USERS_DB = "/var/lib/hopthu/userdb/users.sqlite"


def set_password_as_the_portal_would(who: str, password: str, host: str = "mail1") -> None:
    """Stand-in for the password portal: a new hash and must_change = 0, in
    one UPDATE of the store's user database."""
    from hopthu.lab import ssh_run

    program = (
        "import sqlite3, subprocess, sys\n"
        "who, pw = sys.stdin.read().split('\\n')[:2]\n"
        "h = subprocess.run(['doveadm', 'pw', '-s', 'ARGON2ID'], input=pw + '\\n' + pw + '\\n',"
        " capture_output=True, text=True, check=True).stdout.strip()\n"
        f"db = sqlite3.connect({USERS_DB!r})\n"
        "with db:\n"
        "    n = db.execute(\"UPDATE accounts SET password = ?, must_change = 0 WHERE address = ?"
        "\", (h, who)).rowcount\n"
        "assert n == 1, n\n"
    )
    rc, out, err = ssh_run(host, f"python3 -c {shlex.quote(program)}",
                           input=f"{who}\n{password}\n", timeout=60)
    assert rc == 0, err or out
