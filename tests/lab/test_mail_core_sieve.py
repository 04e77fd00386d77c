"""Vacation replies through Sieve, set by the user over ManageSieve (Art. 10).

Art. 10 asks users to answer quickly; when they cannot, an automatic reply
(RFC 5230) tells the sender. The user uploads the script over ManageSieve
(STARTTLS, then login); Dovecot's LMTP runs it on delivery and the reply
goes out through Postfix.
"""

from __future__ import annotations

import uuid
from email import message_from_bytes, policy

import pytest
from mailcore import (  # noqa: F401  (mail_core is a fixture)
    ManageSieve,
    account,
    mail_core,
    new_message_id,
    submit,
    wait_for,
)

pytestmark = [pytest.mark.lab, pytest.mark.control("ART10-ACCESS"),
              pytest.mark.usefixtures("mail_core")]

REPLY_SUBJECT = "Tôi đang nghỉ phép"


@pytest.fixture
def vacation():
    """Put and activate a vacation script for chi@; remove it afterwards.

    A new :handle each run: vacation answers each sender once per period per
    handle (RFC 5230 §4.2), so every run gets its reply.
    """
    chi = account("chi")
    handle = uuid.uuid4().hex[:12]
    script = (
        'require ["vacation"];\r\n'
        f'vacation :days 1 :handle "{handle}" :subject "{REPLY_SUBJECT}"\r\n'
        '  "Tôi nghỉ phép đến thứ Hai. I am on leave until Monday.";\r\n'
    )
    session = ManageSieve()
    try:
        session.starttls()
        assert session.authenticate(chi).startswith(b"OK")
        assert session.putscript("vacation", script).startswith(b"OK")
        assert session.command('SETACTIVE "vacation"').startswith(b"OK")
    finally:
        session.close()
    yield chi
    session = ManageSieve()
    try:
        session.starttls()
        session.authenticate(chi)
        session.command('SETACTIVE ""')
        session.command('DELETESCRIPT "vacation"')
    finally:
        session.close()


def test_vacation_reply_reaches_the_sender(vacation) -> None:
    an = account("an")
    message_id = new_message_id()
    raw = (
        f"From: {an.address}\r\nTo: {vacation.address}\r\nSubject: Hỏi lịch họp\r\n"
        f"Message-ID: {message_id}\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        "Chị có họp chiều nay không?\r\n"
    ).encode()
    submit(an, raw, [vacation.address])
    replies = wait_for(an, ["HEADER", "In-Reply-To", message_id], timeout=45)
    assert len(replies) == 1, "no vacation reply (exactly one) reached the sender within 45 s"
    reply = message_from_bytes(replies[0], policy=policy.default)
    assert reply["Subject"] == REPLY_SUBJECT
    assert reply["Auto-Submitted"].startswith("auto-replied")
    assert reply["From"].addresses[0].addr_spec == vacation.address
