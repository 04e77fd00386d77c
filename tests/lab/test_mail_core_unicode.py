"""Vietnamese survives the mail system intact (Art. 9, TCVN 6909: Unicode).

RFC 2047 headers, display names, an 8-bit UTF-8 body and an RFC 2231
attachment file name arrive as sent. SMTPUTF8 is not offered
(roles/postfix/README.md): Dovecot's LMTP does not carry it, so Postfix would
accept such mail and bounce it later. The tests prove the other half of that
decision: a client that asks for SMTPUTF8, or gives a UTF-8 address, is
refused while it is still connected, never accepted and bounced.
"""

from __future__ import annotations

import smtplib
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import formataddr, formatdate

import pytest
from mailcore import (  # noqa: F401  (mail_core is a fixture)
    account,
    address,
    fetch_by_message_id,
    mail_core,
    new_message_id,
    on_host,
    submission,
    submit,
)

pytestmark = [pytest.mark.lab, pytest.mark.control("ART9-UNICODE"),
              pytest.mark.usefixtures("mail_core")]

SUBJECT = "Báo cáo tổng kết công tác năm 2025 — Bộ Tư pháp"
BODY = "Kính gửi các đồng chí: đề nghị rà soát văn bản quy phạm pháp luật trước ngày 15/12.\n"
FILE_NAME = "Quyết định số 290-QĐ-BTP về hệ thống thư điện tử.pdf"
FILE_DATA = b"%PDF-1.4\n" + bytes(range(256)) * 8


@pytest.mark.control("ART7-INTEGRITY")  # arrives unaltered (Art. 7)
def test_vietnamese_headers_body_and_attachment_name_arrive_intact() -> None:
    an, binh = account("an"), account("binh")
    message = EmailMessage(policy=policy.SMTP)
    message["From"] = formataddr((an.display_name, an.address))
    message["To"] = formataddr((binh.display_name, binh.address))
    message["Subject"] = SUBJECT
    message["Date"] = formatdate(localtime=True)
    message["Message-ID"] = new_message_id()
    message.set_content(BODY, cte="8bit")
    message.add_attachment(FILE_DATA, maintype="application", subtype="pdf", filename=FILE_NAME)
    raw = message.as_bytes()
    header = raw.split(b"\r\n\r\n", 1)[0]
    assert header.isascii() and b"=?utf-8?" in header.lower(), "headers must be RFC 2047"

    submit(an, raw, [binh.address])

    found = fetch_by_message_id(binh, message["Message-ID"])
    assert len(found) == 1, "the Vietnamese message did not arrive exactly once"
    got = message_from_bytes(found[0], policy=policy.default)
    assert got["Subject"] == SUBJECT
    assert got["From"].addresses[0].display_name == an.display_name
    assert got["To"].addresses[0].display_name == binh.display_name
    assert got.get_body(("plain",)).get_content().replace("\r\n", "\n") == BODY
    attachments = list(got.iter_attachments())
    assert [a.get_filename() for a in attachments] == [FILE_NAME]
    assert attachments[0].get_content() == FILE_DATA


def test_raw_utf8_header_without_smtputf8_is_delivered_not_bounced() -> None:
    # Common in practice: 8-bit header bytes without the SMTPUTF8 request.
    # Postfix passes them as 8BITMIME and Dovecot stores them unchanged.
    an, binh = account("an"), account("binh")
    message_id = new_message_id()
    raw = (
        f"From: {an.address}\r\nTo: {binh.address}\r\nMessage-ID: {message_id}\r\n"
        f"Subject: {SUBJECT}\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        f"{BODY}"
    ).encode()
    submit(an, raw, [binh.address])
    found = fetch_by_message_id(binh, message_id)
    assert len(found) == 1
    assert f"Subject: {SUBJECT}".encode() in found[0]


@pytest.mark.parametrize("port", [25, 587])
def test_smtputf8_is_not_offered(port: int) -> None:
    if port == 25:
        client = smtplib.SMTP(address(), 25, timeout=30)
        client.ehlo("client.lab.test")
        features = dict(client.esmtp_features)
        client.quit()
    else:
        with submission(None) as client:
            features = dict(client.esmtp_features)
    assert "smtputf8" not in features, (
        f"port {port} offers SMTPUTF8, which Dovecot's LMTP cannot deliver: such mail would "
        "be accepted and then bounced (roles/postfix/README.md)"
    )
    assert "8bitmime" in features


def test_a_smtputf8_request_is_refused_before_the_message_is_accepted() -> None:
    with smtplib.SMTP(address(), 25, timeout=30) as client:
        client.ehlo("client.lab.test")
        code, text = client.docmd("MAIL FROM:<> SMTPUTF8")
    assert 500 <= code < 600, f"MAIL FROM ... SMTPUTF8 got {code} {text!r}, not a refusal"


def test_a_utf8_address_is_refused_at_rcpt_not_bounced_later() -> None:
    recipient = "nguyễn.văn.an@moj.gov.vn"
    before = on_host("mail1", "postqueue -j | wc -l")
    with smtplib.SMTP(address(), 25, timeout=30) as client:
        client.ehlo("client.lab.test")
        code, _ = client.docmd("MAIL FROM:<>")
        assert code == 250
        client.send(f"RCPT TO:<{recipient}>\r\n".encode())
        code, text = client.getreply()
    assert 500 <= code < 600, f"RCPT TO a UTF-8 address got {code} {text!r}, not a refusal"
    assert on_host("mail1", "postqueue -j | wc -l") == before, "something was queued"
