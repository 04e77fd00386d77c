"""Mail flows both ways between the ministry and the Internet (Art. 2).

Both directions go the way real mail goes, through the lab's DNS on peer1:

- in: a message submitted to peer1's own Postfix ("an MTA on the Internet")
  for binh@moj.gov.vn; peer1 looks up the MX of moj.gov.vn (the records
  `hopthu dns` prints, served by peer1's NSD), delivers to mail1 over TLS it
  verifies against the lab CA, and the message lands in binh's mailbox;
- out: an@moj.gov.vn submits on mail1:587 with STARTTLS and a login, from
  client1 in the internal zone, to alice@peer.test; mail1 looks up the MX of
  peer.test and delivers, and the message lands in alice's maildir on peer1.

Each message carries a unique mark; each wait is bounded.
"""

from __future__ import annotations

import json
import re
import shlex

import pytest
from vantage import DELIVERY_TIMEOUT, maildir_has, run, swaks, token, wait_for

from hopthu.settings import load_host

# converged_lab: every host deployed first (one Ansible run per session).
pytestmark = [pytest.mark.lab, pytest.mark.control("ART2-FLOW"), pytest.mark.usefixtures("converged_lab")]

MX = "mail1"
INTERNET_HOST = "peer1"
INTERNAL_HOST = "client1"
MINISTRY_SENDER = "an@moj.gov.vn"
MINISTRY_RECIPIENT = "binh@moj.gov.vn"
PEER_USER = "alice"
PEER_ADDRESS = "alice@peer.test"


def seed_password(address: str) -> str:
    """The lab seed account's password (inventories/lab/group_vars/mail_store.yml)."""
    accounts = load_host("lab", MX)["userdb__seed_accounts"]
    return next(a["password"] for a in accounts if a["address"] == address)


def queue_id(transcript: str) -> str:
    match = re.search(r"250 2\.0\.0 Ok: queued as (\w+)", transcript)
    assert match, f"the message was not queued:\n{transcript}"
    return match.group(1)


def in_mailbox(user: str, mark: str) -> bool:
    result = run(MX, f"doveadm search -u {shlex.quote(user)} mailbox INBOX "
                     f"header Subject {shlex.quote(mark)}", timeout=30)
    return result.rc == 0 and bool(result.out.strip())


def delivery_log(host: str, queue: str) -> str:
    return run(host, f"journalctl --no-pager -q --since=-15min | grep -F {shlex.quote(queue)}",
               timeout=30).out


def test_mail_from_the_internet_reaches_a_ministry_mailbox(lab_hosts) -> None:
    mark = token()
    sent = swaks(INTERNET_HOST, "--server", "127.0.0.1", "--from", PEER_ADDRESS,
                 "--to", MINISTRY_RECIPIENT, "--header", f"Subject: {mark}",
                 "--body", f"Thư thử nghiệm từ Internet ({mark}).")
    queue = queue_id(sent.out)
    arrived = wait_for(lambda: in_mailbox(MINISTRY_RECIPIENT, mark))
    log = delivery_log(INTERNET_HOST, queue)
    assert arrived, (
        f"the message {mark} from {PEER_ADDRESS} did not reach {MINISTRY_RECIPIENT}'s INBOX "
        f"on {MX} within {DELIVERY_TIMEOUT} s. peer1's log for {queue}:\n{log}\n"
        f"Check `dig moj.gov.vn MX` on peer1 and `postqueue -p` on both hosts."
    )
    assert f"relay={MX}.moj.gov.vn[{lab_hosts[MX]}]:25" in log and "status=sent" in log, (
        f"peer1 did not deliver to the MX that DNS names ({MX}.moj.gov.vn):\n{log}"
    )


def test_the_internet_delivers_to_the_ministry_over_verified_tls(lab_hosts) -> None:
    mark = token()
    sent = swaks(INTERNET_HOST, "--server", "127.0.0.1", "--from", PEER_ADDRESS,
                 "--to", MINISTRY_RECIPIENT, "--header", f"Subject: {mark}")
    queue = queue_id(sent.out)
    assert wait_for(lambda: "status=sent" in delivery_log(INTERNET_HOST, queue)), (
        f"peer1 did not deliver {queue}:\n{delivery_log(INTERNET_HOST, queue)}"
    )
    # The smtp process that delivered logged its TLS session before the result.
    log = run(INTERNET_HOST, "journalctl --no-pager -q --since=-15min -t postfix/smtp "
              "--output-fields=MESSAGE,_PID -o json", timeout=30).out
    tls = session_tls(log, queue)
    assert tls.startswith(f"Verified TLS connection established to {MX}.moj.gov.vn"), (
        f"peer1 did not verify {MX}'s certificate (an MTA-STS sender would refuse to "
        f"deliver): {tls or 'no TLS session logged'}. Is the lab CA in peer1's trust store "
        f"(pki role) and does {MX}'s certificate name {MX}.moj.gov.vn?"
    )


def session_tls(journal_json: str, queue: str) -> str:
    """The TLS line the smtp process logged last before it delivered `queue`."""
    entries = [json.loads(line) for line in journal_json.splitlines() if line.strip()]
    for index, entry in enumerate(entries):
        if entry.get("MESSAGE", "").startswith(f"{queue}: ") and "status=" in entry["MESSAGE"]:
            pid = entry.get("_PID")
            for earlier in reversed(entries[:index]):
                message = earlier.get("MESSAGE", "")
                if earlier.get("_PID") == pid and "TLS connection established to" in message:
                    return message
    return ""


def test_mail_from_a_ministry_user_reaches_a_mailbox_on_the_internet(lab_hosts) -> None:
    mark = token()
    sent = swaks(INTERNAL_HOST, "--server", lab_hosts[MX], "--port", "587", "--tls",
                 "--auth", "PLAIN", "--auth-user", MINISTRY_SENDER,
                 "--auth-password", seed_password(MINISTRY_SENDER),
                 "--from", MINISTRY_SENDER, "--to", PEER_ADDRESS,
                 "--header", f"Subject: {mark}",
                 "--body", f"Thư thử nghiệm từ Bộ Tư pháp ({mark}).")
    queue = queue_id(sent.out)
    maildir = f"/home/{PEER_USER}/Maildir"
    arrived = wait_for(lambda: maildir_has(INTERNET_HOST, maildir, mark))
    assert arrived, (
        f"the message {mark} from {MINISTRY_SENDER} did not reach {PEER_ADDRESS} ({maildir} "
        f"on peer1) within {DELIVERY_TIMEOUT} s. {MX}'s log for {queue}:\n"
        f"{delivery_log(MX, queue)}\nCheck `dig peer.test MX` on {MX}."
    )
    log = delivery_log(MX, queue)
    assert f"relay=peer1.peer.test[{lab_hosts[INTERNET_HOST]}]:25" in log, (
        f"{MX} did not deliver to the MX that DNS names for peer.test:\n{log}"
    )
