"""A user cannot open another user's mailbox (Art. 11.5, Art. 14).

Logins are checked against the user database by Dovecot; mailboxes are
Maildirs owned by vmail and private; there is no shared namespace through
which one user could name another's folders.
"""

from __future__ import annotations

import imaplib

import pytest
from mailcore import account, address, imap, mail_core, on_host, on_peer  # noqa: F401

pytestmark = [pytest.mark.lab, pytest.mark.control("ART11-5-ACCESS"),
              pytest.mark.usefixtures("mail_core")]


def test_a_users_password_does_not_open_another_users_mailbox() -> None:
    an, binh = account("an"), account("binh")
    result = on_peer(f"""
import imaplib, json, ssl
m = imaplib.IMAP4_SSL(TARGET, 993, ssl_context=ssl._create_unverified_context(), timeout=60)
try:
    m.login({binh.address!r}, {an.password!r})
    print(json.dumps("logged in"))
except imaplib.IMAP4.error as exc:
    print(json.dumps(str(exc)))
""")
    assert "AUTHENTICATIONFAILED" in result, f"binh@ with an@'s password: {result}"


@pytest.mark.parametrize(
    "mailbox",
    ["../binh/Maildir", "~binh/INBOX", "/var/vmail/moj.gov.vn/binh/Maildir",
     "#shared/binh@moj.gov.vn/INBOX", "binh@moj.gov.vn/INBOX"],
)
def test_a_user_cannot_select_another_users_folder(mailbox: str) -> None:
    with imap(account("an")) as client:
        with pytest.raises(imaplib.IMAP4.error):
            status, _ = client.select(f'"{mailbox}"', readonly=True)
            if status != "OK":
                raise imaplib.IMAP4.error(status)
        _, listing = client.list('""', '"*"')
    names = b"\n".join(x for x in listing if isinstance(x, bytes))
    assert b"binh" not in names, f"an@ sees another user's folders: {names!r}"


def test_mailboxes_on_disk_are_private_to_vmail() -> None:
    out = on_host("mail1", "stat -c '%U:%G %a %n' /var/vmail /var/vmail/moj.gov.vn/*/Maildir")
    lines = out.strip().splitlines()
    assert lines[0].startswith("vmail:vmail 750 "), lines[0]
    for line in lines[1:]:
        owner, mode, _ = line.split(" ", 2)
        assert owner == "vmail:vmail" and mode == "700", f"not private: {line}"


def test_password_hashes_are_readable_only_by_root_and_dovecot() -> None:
    out = on_host("mail1", "stat -c '%U:%G %a' /var/lib/hopthu/userdb/users.sqlite")
    assert out.split() == ["root:dovecot", "640"], out
    columns = on_host(
        "mail1",
        "sqlite3 -readonly /var/lib/hopthu/userdb/postfix.sqlite "
        "\"SELECT group_concat(name) FROM pragma_table_info('mailboxes')\"",
    )
    assert "password" not in columns, "Postfix's copy of the user database carries secrets"
