"""Mail flows through the mail core: submitted, delivered, read (Art. 2, Art. 10).

A user submits on 587 (STARTTLS, then AUTH) or 465 (implicit TLS); Postfix
hands the message to Dovecot over LMTP; the recipient reads it over IMAPS or
POP3S, and the body is byte for byte what the sender wrote.
"""

from __future__ import annotations

import poplib
import time
from email.utils import formatdate

import pytest
from mailcore import (  # noqa: F401  (mail_core is a fixture)
    account,
    address,
    body_of,
    fetch_by_message_id,
    imap,
    mail_core,
    new_message_id,
    submit,
    tls_context,
)

pytestmark = [pytest.mark.lab, pytest.mark.usefixtures("mail_core")]

#: A body that exercises the transport: Vietnamese in 8-bit UTF-8, a line that
#: starts with a dot (SMTP dot-stuffing, RFC 5321 §4.5.2), trailing spaces,
#: a tab and a long line.
BODY = (
    "Kính gửi chị Bình,\r\n"
    "\r\n"
    ".Dòng này bắt đầu bằng dấu chấm.\r\n"
    "..và dòng này bằng hai.\r\n"
    "Khoảng trắng cuối dòng   \r\n"
    "\tThụt lề bằng tab\r\n"
    + "Văn bản dài " * 60 + "\r\n"
    "Trân trọng,\r\nAn\r\n"
).encode("utf-8")


def _message(sender: str, recipient: str, subject: str, body: bytes) -> tuple[str, bytes]:
    message_id = new_message_id()
    head = (
        f"From: {sender}\r\nTo: {recipient}\r\nSubject: {subject}\r\n"
        f"Date: {formatdate(localtime=True)}\r\nMessage-ID: {message_id}\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n\r\n"
    )
    return message_id, head.encode("ascii") + body


@pytest.mark.control("ART2-FLOW")
@pytest.mark.control("ART7-INTEGRITY")  # arrives unaltered (Art. 7)
@pytest.mark.parametrize("port", [587, 465], ids=["submission-starttls", "submissions-tls"])
def test_submitted_message_arrives_in_the_recipients_inbox_byte_identical(port: int) -> None:
    an, binh = account("an"), account("binh")
    message_id, raw = _message(an.address, binh.address, f"Flow test on port {port}", BODY)

    submit(an, raw, [binh.address], port=port)

    found = fetch_by_message_id(binh, message_id)
    assert len(found) == 1, (
        f"expected the message {message_id} once in {binh.address}'s INBOX over IMAPS, found "
        f"{len(found)}; check `journalctl -u postfix@- -u dovecot` on mail1"
    )
    assert body_of(found[0]) == BODY.replace(b"\r\n", b"\n"), (
        "the delivered body differs from what was submitted: something on the path rewrote it"
    )


@pytest.mark.control("ART2-FLOW")
def test_pop3s_client_downloads_the_delivered_message() -> None:
    an, chi = account("an"), account("chi")
    message_id, raw = _message(an.address, chi.address, "POP3 test", BODY)
    submit(an, raw, [chi.address])
    assert fetch_by_message_id(chi, message_id), "the message did not reach the INBOX"

    client = poplib.POP3_SSL(address(), 995, context=tls_context(), timeout=30)
    try:
        client.user(chi.address)
        client.pass_(chi.password)
        count, _ = client.stat()
        assert count >= 1
        lines = client.retr(count)[1]
    finally:
        client.quit()
    assert message_id.encode() in b"\n".join(lines), "POP3 RETR did not return the new message"


@pytest.mark.control("ART10-ACCESS")
def test_imap_pushes_new_mail_with_idle() -> None:
    an, binh = account("an"), account("binh")
    with imap(binh) as client:
        assert "IDLE" in client.capabilities, client.capabilities
        client.select("INBOX")
        tag = client._new_tag().decode()  # imaplib has no IDLE command of its own
        client.send(f"{tag} IDLE\r\n".encode())
        assert client.readline().startswith(b"+"), "the server did not enter IDLE"
        _, raw = _message(an.address, binh.address, "IDLE test", b"push\r\n")
        started = time.monotonic()
        submit(an, raw, [binh.address])
        client.sock.settimeout(30)
        line = client.readline()
        pushed_after = time.monotonic() - started
        client.send(b"DONE\r\n")
        while not client.readline().startswith(tag.encode()):
            pass
    assert b"EXISTS" in line, f"IDLE reported {line!r} instead of the new message"
    assert pushed_after < 30
