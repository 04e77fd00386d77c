"""Filtering (Art. 11.6): viruses, spam, the content policy, DKIM/DMARC, learning, failure.

Every message here goes the real way: from peer1 ("the Internet") to mail1's
port 25 through postscreen, or from a logged-in user on 587, through
Postfix's milter to Rspamd, which asks clamd (roles/postfix, roles/rspamd,
roles/clamav). The lab's ClamAV knows one signature, EICAR's
(inventories/lab/group_vars/mail_mx.yml); the lab honours every GTUBE test
pattern (rspamd__gtube_patterns: all), so the add-header action can be
forced with Rspamd's own test string.
"""

from __future__ import annotations

import base64
import email
import email.policy
import io
import re
import shlex
import time
import uuid
import zipfile
from email.message import EmailMessage
from email.utils import formatdate

import pytest
from mailcore import account, address, imap, mail_core, new_message_id, on_host, on_peer  # noqa: F401
from vantage import maildir_has, run, token, wait_for

pytestmark = [pytest.mark.lab, pytest.mark.usefixtures("mail_core")]

MX = "mail1"
PEER = "peer1"
RECIPIENT = "binh@moj.gov.vn"
PEER_SENDER = "alice@peer.test"

# The EICAR test file (https://www.eicar.org), 68 bytes, and the GTUBE strings
# (https://rspamd.com/doc/gtube_patterns.html): the reject one, and the one
# that forces the add-header action.
EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
GTUBE_REJECT = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
GTUBE_ADD_HEADER = "YJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"

CONTROLLER = "-h localhost:11334 -P /etc/hopthu/rspamd/controller.password"


# --- Building and sending messages ---------------------------------------------------


def build(subject: str, text: str, *, attachments: tuple[tuple[str, bytes, str], ...] = (),
          sender: str = PEER_SENDER, to: str = RECIPIENT) -> bytes:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = formatdate(localtime=True)
    message["Message-ID"] = new_message_id()
    message.set_content(text)
    for name, data, ctype in attachments:
        maintype, subtype = ctype.split("/")
        message.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return message.as_bytes(policy=email.policy.SMTP)


def zipped(name: str, data: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(name, data)
    return buffer.getvalue()


def prose(mark: str) -> str:
    """A plain, unique text of some length: enough tokens for Bayes to learn."""
    words = ["công", "văn", "báo", "cáo", "tổng", "hợp", "kết", "quả", "thực", "hiện",
             "nhiệm", "vụ", "tháng", "này", "gửi", "các", "đơn", "vị", "thuộc", "Bộ", "để",
             "phối", "hợp", "triển", "khai", "theo", "kế", "hoạch", "đã", "được", "phê", "duyệt"]
    return f"Kính gửi anh chị ({mark}),\n\n" + " ".join(
        f"{w}{i % 7}" if i % 5 == 0 else w for i, w in enumerate(words * 3)) + "\n"


#: Sent on peer1 ("the Internet") to mail1's port 25: every reply kept, the
#: exchange stops at the first refusal.
SEND_FROM_PEER = """
import base64, json, smtplib
def send(sender, recipients, data):
    s = smtplib.SMTP(TARGET, 25, timeout=90)
    s.ehlo("peer1.peer.test")
    if s.has_extn("starttls"):
        try:
            s.starttls()
        except smtplib.SMTPResponseException as error:  # e.g. 454 while a milter is down
            return [error.smtp_code, error.smtp_error.decode("utf-8", "replace")]
        s.ehlo("peer1.peer.test")
    for command in [f"MAIL FROM:<{sender}>"] + [f"RCPT TO:<{r}>" for r in recipients]:
        code, text = s.docmd(command)
        if code >= 400:
            return [code, text.decode("utf-8", "replace")]
    try:
        code, text = s.data(base64.b64decode(data))
    except smtplib.SMTPResponseException as error:
        code, text = error.smtp_code, error.smtp_error
    try:
        s.quit()
    except Exception:
        pass
    return [code, text.decode("utf-8", "replace") if isinstance(text, bytes) else text]
"""


def from_internet(message: bytes, *, sender: str = PEER_SENDER,
                  recipients: tuple[str, ...] = (RECIPIENT,)) -> tuple[int, str]:
    data = base64.b64encode(message).decode()
    code, text = on_peer(SEND_FROM_PEER + f"print(json.dumps(send({sender!r}, "
                         f"{list(recipients)!r}, {data!r})))")
    return code, text


def from_user(local: str, message: bytes, recipients: list[str], *,
              port: int = 587) -> tuple[int, str]:
    """Submit as a lab account; the first refusal, or the final reply to DATA."""
    import smtplib

    from mailcore import submission

    user = account(local)
    try:
        with submission(user, port=port) as client:
            for command in ([f"MAIL FROM:<{user.address}>"]
                            + [f"RCPT TO:<{r}>" for r in recipients]):
                code, text = client.docmd(command)
                if code >= 400:
                    return code, text.decode("utf-8", "replace")
            code, text = client.data(message)
    except smtplib.SMTPResponseException as error:  # refused before DATA ended (STARTTLS...)
        code, text = error.smtp_code, error.smtp_error
    return code, text.decode("utf-8", "replace")


def in_mailbox(user: str, mark: str, mailbox: str = "INBOX") -> bool:
    out = run(MX, f"doveadm search -u {shlex.quote(user)} mailbox {shlex.quote(mailbox)} "
                  f"header Subject {shlex.quote(mark)}", timeout=30)
    return out.rc == 0 and bool(out.out.strip())


# --- Viruses (ART11-6-AV) ---------------------------------------------------------------


def eicar_body(mark: str) -> bytes:
    """The EICAR file as the message's body: base64, so the decoded body is its 68 bytes.

    The lab's only signature is a hash of the whole file (an .hdb entry); a
    text body with EICAR and a line end hashes differently. The real
    signature database also matches the string inside text.
    """
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = PEER_SENDER, RECIPIENT, mark
    message["Date"], message["Message-ID"] = formatdate(localtime=True), new_message_id()
    message.set_content(EICAR, maintype="text", subtype="plain", cte="base64")
    return message.as_bytes(policy=email.policy.SMTP)


EICAR_CASES = {
    "body": eicar_body,
    "attachment": lambda mark: build(mark, "Tệp đính kèm.", attachments=(
        ("eicar.txt", EICAR, "application/octet-stream"),)),
    "zip": lambda mark: build(mark, "Tệp nén đính kèm.", attachments=(
        ("tai-lieu.zip", zipped("eicar.txt", EICAR), "application/zip"),)),
}


@pytest.mark.control("ART11-6-AV")
@pytest.mark.parametrize("where", sorted(EICAR_CASES))
def test_eicar_from_the_internet_is_refused_with_5xx(where: str) -> None:
    mark = token()
    code, text = from_internet(EICAR_CASES[where](mark))
    assert 500 <= code < 600 and "virus" in text.lower(), (
        f"EICAR in the {where} got {code} {text!r}, not a 5xx naming a virus. Check "
        "`journalctl -u rspamd` (antivirus) and `systemctl status clamav-daemon` on mail1."
    )
    assert not in_mailbox(RECIPIENT, mark)


@pytest.mark.control("ART11-6-AV")
def test_eicar_from_a_ministry_user_is_refused_at_submission() -> None:
    code, text = from_user("an", EICAR_CASES["attachment"](token()), ["alice@peer.test"])
    assert 500 <= code < 600 and "virus" in text.lower(), (code, text)


# --- Spam (ART11-6-SPAM) ------------------------------------------------------------------


@pytest.mark.control("ART11-6-SPAM")
def test_gtube_is_refused() -> None:
    mark = token()
    code, text = from_internet(build(mark, f"Quảng cáo.\n{GTUBE_REJECT}\n"))
    assert 500 <= code < 600 and "gtube" in text.lower(), (code, text)
    assert not in_mailbox(RECIPIENT, mark)


@pytest.mark.control("ART11-6-SPAM")
def test_mail_scored_for_a_header_but_not_a_reject_lands_in_junk() -> None:
    mark = token()
    code, text = from_internet(build(mark, f"Có thể là thư rác.\n{GTUBE_ADD_HEADER}\n"))
    assert code == 250, f"the add-header test message was refused: {code} {text}"
    assert wait_for(lambda: in_mailbox(RECIPIENT, mark, "Junk")), (
        f"the message {mark} (Rspamd: add header, X-Spam: Yes) did not reach binh's Junk; "
        "check the global junk Sieve script (roles/dovecot)."
    )
    assert not in_mailbox(RECIPIENT, mark, "INBOX")


@pytest.mark.control("ART11-6-SPAM")
def test_clean_mail_from_the_internet_is_delivered_to_the_inbox() -> None:
    mark = token()
    code, text = from_internet(build(mark, prose(mark)))
    assert code == 250, (code, text)
    assert wait_for(lambda: in_mailbox(RECIPIENT, mark)), f"{mark} not in binh's INBOX"


# --- The content policy (ART11-6-CONTENT) ------------------------------------------------


CONTENT_CASES = {
    "exe": ("chuong-trinh.exe", b"MZ\x90\x00" + b"\x00" * 60, "application/octet-stream"),
    "exe-in-zip": ("goi.zip", zipped("setup.exe", b"MZ\x90\x00" + b"\x00" * 60),
                   "application/zip"),
    "docm": ("bao-cao.docm", b"PK\x03\x04 not really a document", "application/octet-stream"),
}


@pytest.mark.control("ART11-6-CONTENT")
@pytest.mark.parametrize("case", sorted(CONTENT_CASES))
def test_a_blocked_attachment_type_is_refused_with_the_reason(case: str) -> None:
    mark = token()
    code, text = from_internet(build(mark, "Tài liệu gửi kèm.", attachments=(CONTENT_CASES[case],)))
    assert 500 <= code < 600, f"a {case} attachment got {code} {text!r}"
    assert "attachment" in text.lower() or "tệp" in text.lower(), (
        f"the refusal does not tell the sender why: {text!r}")
    assert not in_mailbox(RECIPIENT, mark)


@pytest.mark.control("ART11-6-CONTENT")
def test_a_permitted_attachment_is_delivered() -> None:
    mark = token()
    code, text = from_internet(build(mark, prose(mark), attachments=(
        ("bao-cao.pdf", b"%PDF-1.4\n% lab\n", "application/pdf"),)))
    assert code == 250, (code, text)
    assert wait_for(lambda: in_mailbox(RECIPIENT, mark)), f"{mark} not delivered"


@pytest.mark.control("ART11-6-CONTENT")
def test_a_banned_pattern_is_refused_with_the_reason() -> None:
    code, text = from_internet(build(token(), "Nội dung HOPTHU-LAB-BANNED-TEXT ở đây."))
    assert 500 <= code < 600, (code, text)
    assert len(text) > 20, f"the refusal gives no reason: {text!r}"


# --- DKIM and DMARC (ART2-FLOW, ART11-5-RELAY) -------------------------------------------


def _lab_txt(name: bytes | str, timeout: int = 5) -> bytes | None:
    """TXT records as the Internet sees them: from peer1's DNS, which serves hopthu dns."""
    import dns.resolver

    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = ["198.18.0.130"]
    qname = name.decode() if isinstance(name, bytes) else name
    try:
        answer = resolver.resolve(qname, "TXT", lifetime=timeout)
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return None
    return b"".join(answer[0].strings)


@pytest.mark.control("ART2-FLOW")
def test_ministry_mail_reaches_the_peer_with_a_dkim_signature_that_verifies() -> None:
    import dkim

    mark = token()
    code, text = from_user("an", build(mark, prose(mark), sender="an@moj.gov.vn",
                                       to="alice@peer.test"), ["alice@peer.test"])
    assert code == 250, (code, text)
    maildir = "/home/alice/Maildir"
    assert wait_for(lambda: maildir_has(PEER, maildir, mark)), f"{mark} did not reach peer1"
    path = run(PEER, f"grep -rl {shlex.quote(mark)} {maildir}/new {maildir}/cur | head -1").out
    raw = base64.b64decode(run(PEER, f"base64 -w0 {shlex.quote(path.strip())}").out)
    assert b"DKIM-Signature:" in raw, "the message left the ministry unsigned"
    signature = raw.split(b"DKIM-Signature:", 1)[1].split(b"\n", 1)[0]
    assert b"d=moj.gov.vn" in signature.replace(b" ", b""), signature
    assert dkim.verify(raw, dnsfunc=_lab_txt), (
        "the DKIM signature does not verify against the key in the lab DNS "
        "(`hopthu dns` prints it; dns__dkim_dir on the controller holds it)"
    )


@pytest.mark.control("ART11-5-RELAY")
def test_mail_from_the_internet_forging_a_ministry_from_is_refused_by_dmarc() -> None:
    mark = token()
    message = build(mark, prose(mark), sender="an@moj.gov.vn")
    message_id = email.message_from_bytes(message)["Message-ID"].strip("<>")
    code, text = from_internet(message, sender="tester@peer.test")
    assert 500 <= code < 600, (
        f"a forged From: an@moj.gov.vn from peer1 got {code} {text!r}; the published DMARC "
        "policy is reject"
    )
    assert not in_mailbox(RECIPIENT, mark)
    # Refused because of DMARC, not by chance: Rspamd logs the verdict and its symbols.
    verdict = run(MX, f"journalctl -u rspamd --since=-10min --no-pager -o cat | "
                      f"grep -F {shlex.quote(message_id)}", timeout=30).out
    assert "(reject)" in verdict and "DMARC_POLICY_REJECT" in verdict, (
        f"Rspamd's verdict on the forged message does not cite DMARC: {verdict[:600]}")


# --- Learning from users (IMAPSieve) ----------------------------------------------------


def learned() -> dict[str, int]:
    out = on_host(MX, f"rspamc {CONTROLLER} stat")
    counts = {}
    for kind in ("BAYES_SPAM", "BAYES_HAM"):
        match = re.search(rf"Statfile: {kind} .*?learned: (\d+)", out)
        counts[kind] = int(match.group(1)) if match else 0
    return counts


def imap_move(local: str, mark: str, source: str, target: str) -> None:
    with imap(account(local)) as client:
        client.select(f'"{source}"')
        _, data = client.uid("SEARCH", None, "HEADER", "Subject", mark)
        uids = data[0].split()
        assert uids, f"{mark} is not in {source}"
        status, reply = client.uid("MOVE", uids[0].decode(), f'"{target}"')
        assert status == "OK", reply


def learn_logged(command: str, since: str) -> bool:
    """Whether rspamd-learn logged that Rspamd's controller accepted `command`
    (it logs "learned" only on rspamc's "success = true") since `since`."""
    out = on_host(MX, f"journalctl -t hopthu-rspamd-learn --since {shlex.quote(since)} "
                      f"--no-pager -o cat")
    return f"{command}: learned" in out


def test_moving_into_junk_learns_spam_and_out_of_junk_learns_ham() -> None:
    """A move into Junk teaches Rspamd spam, a move out teaches it ham. The
    learning program's own log says at once that the controller accepted it;
    the controller's counters (`rspamc stat`) follow when Rspamd next reads
    them from Redis, which it does on a timer (about every 30-60 s), so they
    are given 120 s."""
    mark = token()
    code, text = from_internet(build(mark, prose(mark) + uuid.uuid4().hex))
    assert code == 250, (code, text)
    assert wait_for(lambda: in_mailbox(RECIPIENT, mark)), f"{mark} not delivered"
    before = learned()
    since = on_host(MX, "date '+%Y-%m-%d %H:%M:%S'").strip()
    imap_move("binh", mark, "INBOX", "Junk")
    assert wait_for(lambda: learn_logged("learn_spam", since), timeout=30), (
        "moving into Junk did not teach Rspamd spam: see `journalctl -t hopthu-rspamd-learn` "
        "on mail1")
    assert wait_for(lambda: learned()["BAYES_SPAM"] > before["BAYES_SPAM"], timeout=120), (
        f"Rspamd accepted the spam lesson, but its BAYES_SPAM count did not grow "
        f"({before} -> {learned()})")
    middle = learned()
    since = on_host(MX, "date '+%Y-%m-%d %H:%M:%S'").strip()
    imap_move("binh", mark, "Junk", "INBOX")
    assert wait_for(lambda: learn_logged("learn_ham", since), timeout=30), (
        "moving out of Junk did not teach Rspamd ham: see `journalctl -t hopthu-rspamd-learn` "
        "on mail1")
    assert wait_for(lambda: learned()["BAYES_HAM"] > middle["BAYES_HAM"], timeout=120), (
        f"Rspamd accepted the ham lesson, but its BAYES_HAM count did not grow "
        f"({middle} -> {learned()})")


# --- Failure: Rspamd or clamd down, nothing accepted unscanned, nothing lost (ART7-INTEGRITY)


def _queue_on_peer(message: bytes) -> None:
    """Hand a message to peer1's own Postfix, which delivers it to mail1 and retries."""
    data = base64.b64encode(message).decode()
    on_host(PEER, f"printf %s {shlex.quote(data)} | base64 -d | "
                  f"/usr/sbin/sendmail -f {PEER_SENDER} -- {RECIPIENT}")


FAILURES = {
    # clamd is socket-activated: both units must stop, or the next scan starts it again.
    "clamd": ("clamav-daemon.socket clamav-daemon.service", "clamd", True),
    "rspamd": ("rspamd.service", "rspamd", False),
}


def _stop(units: str, process: str) -> None:
    """Stop the units and wait until their daemon is gone. --no-block: in the lab,
    systemd may wait its full stop timeout for the unit's cgroup to empty when
    another lab host runs the same unit (the hosts share one cgroup tree,
    tests/lab/test_mail_core_integrity.py), although no process of this host is left."""
    gone = (f"for i in $(seq 40); do pgrep -x {process} >/dev/null || exit 0; sleep 0.5; done; "
            "exit 1")
    # If it has not exited after 20 s, it is killed (this host's processes only):
    # the point is that the filter is not there, however it went.
    on_host(MX, f"systemctl stop --no-block {units}; ({gone}) || "
                f"(pkill -KILL -x {process}; {gone})", timeout=60)


def _message(mark: str, attachment: bool) -> bytes:
    # Only mail with an attachment goes to clamd when Rspamd asks it: the clamd
    # case needs one. The rspamd case works either way.
    extra = (("bien-ban.txt", b"Bien ban hop.\n", "text/plain"),) if attachment else ()
    return build(mark, prose(mark), attachments=extra)


@pytest.mark.control("ART7-INTEGRITY")
@pytest.mark.parametrize("which", sorted(FAILURES))
def test_a_filter_down_means_4xx_and_the_retry_is_delivered(which: str) -> None:
    units, process, attachment = FAILURES[which]
    mark = token()
    try:
        _stop(units, process)
        code, text = from_internet(_message(token(), attachment))
        assert 400 <= code < 500, f"with {which} down, port 25 answered {code} {text!r}, not 4xx"
        code, text = from_user("an", _message(token(), attachment), [RECIPIENT])
        assert 400 <= code < 500, f"with {which} down, submission answered {code} {text!r}"
        # A real sender: peer1's Postfix gets 4xx, keeps the message and retries.
        _queue_on_peer(_message(mark, attachment))
        assert wait_for(lambda: " 4" in run(PEER, "postqueue -p").out, timeout=60), (
            f"peer1 did not get a temporary refusal: {run(PEER, 'postqueue -p').out}")
        assert not in_mailbox(RECIPIENT, mark)
    finally:
        on_host(MX, f"systemctl start {units}", timeout=240)
        wait_for(lambda: ":11332 " in on_host(MX, "ss -Hltn"), timeout=60)
        time.sleep(3)
    on_host(PEER, "postqueue -f")
    assert wait_for(lambda: in_mailbox(RECIPIENT, mark)), (
        f"after {which} came back, peer1's retry of {mark} was not delivered")
    found = run(MX, f"doveadm search -u {RECIPIENT} mailbox INBOX header Subject "
                    f"{shlex.quote(mark)}").out.strip().splitlines()
    assert len(found) == 1, f"{mark} delivered {len(found)} times"


# --- The outbound rate limit --------------------------------------------------------------


@pytest.mark.control("ART11-5-RELAY")
def test_a_burst_from_one_account_hits_the_rate_limit() -> None:
    burst = int(on_host(MX, "grep -oP 'burst = \\K[0-9]+' /etc/rspamd/local.d/ratelimit.conf"))
    # The Internet is where an abused account's burst would go; peer1 keeps
    # alice+rlN@peer.test in alice's maildir. (A burst to one ministry mailbox
    # would meet Dovecot's per-user LMTP limit instead, and the deferred rest
    # would collide with the next test's delivery to that mailbox.)
    recipients = [f"alice+rl{i}@peer.test" for i in range(burst + 1)]
    try:
        first = from_user("vanphong", build(token(), "Thông báo chung.",
                                            sender="vanphong@moj.gov.vn"), recipients)
        second = from_user("vanphong", build(token(), "Thông báo nữa.",
                                             sender="vanphong@moj.gov.vn"), [RECIPIENT])
        assert first[0] == 250, f"the first message was refused: {first}"
        assert 400 <= second[0] < 500 and "too many" in second[1].lower(), (
            f"after {burst + 1} recipients the next message got {second}, not the rate limit")
    finally:
        on_host(MX, "redis-cli --scan --pattern 'RL*' | xargs -r redis-cli del >/dev/null")
        # Leave nothing of the burst in mail1's queue for the tests after this one.
        drained = wait_for(lambda: "+rl" not in run(MX, "postqueue -j").out, timeout=90)
    assert drained, f"the burst is still queued on {MX}: {run(MX, 'postqueue -p').out}"


def test_the_filters_listen_on_loopback_only() -> None:
    ports = (11332, 11334, 6379)
    wait_for(lambda: all(f":{p} " in on_host(MX, "ss -Hltn") for p in ports), timeout=30)
    out = on_host(MX, "ss -Hltn")
    for port in ports:
        listeners = [line.split()[3] for line in out.splitlines()
                     if line.split()[3].endswith(f":{port}")]
        assert listeners, f"nothing listens on {port}"
        assert all(a.startswith(("127.", "[::1]", "::1")) for a in listeners), (port, listeners)
