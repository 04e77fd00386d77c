"""Quotas: a warning before the mailbox is full, and no loss when it is (Art. 7, 8).

The lab's hanmuc@ mailbox has a tiny quota (inventories/lab/group_vars/
mail_store.yml). A message that takes it past 80 % brings the warning mail;
once it is full, Postfix refuses the next message at RCPT time with a
temporary error (Dovecot's quota-status service), so the sender keeps it and
retries: nothing is accepted and then bounced, nothing is lost.
"""

from __future__ import annotations

import smtplib
import uuid

import pytest
from mailcore import account, mail_core, on_host, submission, wait_for  # noqa: F401

pytestmark = [pytest.mark.lab, pytest.mark.control("ART7-INTEGRITY"),
              pytest.mark.usefixtures("mail_core")]


def _empty(address: str) -> None:
    on_host("mail1", f"doveadm expunge -u {address} mailbox '*' all && "
                     f"doveadm quota recalc -u {address}")


@pytest.fixture
def small_mailbox():
    box = account("hanmuc")
    _empty(box.address)
    yield box
    # Make room again, and let any warning that waited for room be delivered.
    _empty(box.address)
    on_host("mail1", "postqueue -f")


def _filler(recipient: str, size: int, token: str) -> bytes:
    line = "Dữ liệu kiểm thử hạn mức. " * 2
    body = (line.strip() + "\r\n") * (size // (len(line.encode()) + 1))
    return (f"From: an@moj.gov.vn\r\nTo: {recipient}\r\nSubject: {token}\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
            "Content-Transfer-Encoding: 8bit\r\n\r\n" + body).encode("utf-8")


def test_quota_warning_arrives_when_the_mailbox_passes_80_percent(small_mailbox) -> None:
    an = account("an")
    token = f"quota-{uuid.uuid4().hex[:8]}"
    size = int(small_mailbox.quota * 0.85)
    with submission(an) as client:
        client.sendmail(an.address, [small_mailbox.address],
                        _filler(small_mailbox.address, size, token))
    warnings = wait_for(small_mailbox, ["FROM", "postmaster@moj.gov.vn", "SUBJECT", "80%"])
    assert len(warnings) == 1, "no quota warning (80 %) arrived within 30 s"
    assert b"Auto-Submitted: auto-generated" in warnings[0]


def test_a_full_mailbox_refuses_mail_at_rcpt_with_a_temporary_error(small_mailbox) -> None:
    an = account("an")
    token = f"quota-{uuid.uuid4().hex[:8]}"
    # Past the limit: the last message may go over it (quota grace).
    with submission(an) as client:
        for part in (0.85, 0.3):
            client.sendmail(an.address, [small_mailbox.address],
                            _filler(small_mailbox.address, int(small_mailbox.quota * part), token))
    assert len(wait_for(small_mailbox, ["SUBJECT", token], count=2)) == 2
    with submission(an) as client, pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        client.sendmail(an.address, [small_mailbox.address],
                        _filler(small_mailbox.address, 2000, token + "-refused"))
    code, text = refused.value.recipients[small_mailbox.address]
    assert code == 452 and b"Mailbox is full" in text, (
        f"a full mailbox answered {code} {text!r}; expected 452 4.2.2 (temporary: the sender "
        "keeps the message and retries)"
    )
