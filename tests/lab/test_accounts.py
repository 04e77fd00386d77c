"""The accounts registry applied to mail1 by `hopthu accounts`, end to end.

A scratch copy of the lab inventory carries the changed registries (the
repository's stays as it is); `hopthu accounts apply --limit mail1` applies
each through the same template and host tool as the deploys, and the
checks talk IMAP, SMTP and SSH to the real daemons. At the end the lab's own
registry is applied again.

Until the password portal lands, "the user changes the initial password" is
done on the host with `doveadm pw` and one UPDATE, marked below.
"""

from __future__ import annotations

import contextlib
import hashlib
import imaplib
import json
import shlex
import shutil
import smtplib
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from mailcore import (  # noqa: F401
    PEER_SMTP,
    USERS_DB,
    Account,
    account,
    address,
    fetch_by_message_id,
    imap,
    mail_core,
    on_host,
    on_peer,
    set_password_as_the_portal_would,
    submission,
    tls_context,
)

from hopthu import ROOT

pytestmark = [pytest.mark.lab, pytest.mark.usefixtures("mail_core")]

DOMAIN = "moj.gov.vn"
AUDIT_LOG = "/var/log/hopthu/accounts.log"
#: This run's own accounts: a lab that ran these tests before keeps their
#: accounts, archived (never deleted), so each run creates new ones.
RUN = uuid.uuid4().hex[:6]
NEWCOMER = {"address": f"thutv{RUN}@{DOMAIN}", "kind": "personal",
            "staff_id": f"LAB-{RUN.upper()}-1", "unit": "Vụ Pháp chế",
            "display_name": "Trần Văn Thư", "quota": "100 MiB"}


def lab_registry() -> list[dict[str, Any]]:
    data = yaml.safe_load((ROOT / "inventories" / "lab" / "accounts.yml").read_text("utf-8"))
    return data["accounts"]


def hopthu(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hopthu", *args], cwd=ROOT, text=True,
                          capture_output=True, timeout=timeout, check=False)


class Scratch:
    """A copy of the lab inventory whose registry a test may rewrite."""

    def __init__(self, path: Path):
        self.path = path
        #: every initial password this module was given, to look for in logs
        self.issued: set[str] = set()

    def registry(self, entries: list[dict[str, Any]]) -> None:
        (self.path / "accounts.yml").write_text(
            yaml.safe_dump({"accounts": entries}, allow_unicode=True, sort_keys=False),
            encoding="utf-8")

    def apply(self, *, expect: int = 0) -> subprocess.CompletedProcess[str]:
        result = hopthu("accounts", "apply", "--inventory", str(self.path), "--limit", "mail1")
        assert result.returncode == expect, result.stdout + result.stderr
        self.collect(result)
        return result

    @property
    def secrets(self) -> Path:
        return ROOT / "secrets" / self.path.name / "initial-passwords"

    def collect(self, result: subprocess.CompletedProcess[str]) -> dict[str, str]:
        """The passwords of the files the last command saved; none is on its console."""
        found: dict[str, str] = {}
        for file in sorted(self.secrets.glob("*.txt")) if self.secrets.is_dir() else []:
            assert file.stat().st_mode & 0o777 == 0o600, f"{file} is not 0600"
            for line in file.read_text().splitlines():
                if line and not line.startswith("#"):
                    who, secret = line.split("\t")
                    found[who] = secret
        for secret in found.values():
            assert secret not in result.stdout + result.stderr, "a password reached the console"
        self.issued.update(found.values())
        return found

    def password(self, who: str) -> str:
        """The newest initial password mail1 gave `who` (files are named by host and
        time; mail2, the other store, keeps its own database)."""
        newest = ""
        for file in sorted(self.secrets.glob("mail1-*.txt")):
            for line in file.read_text().splitlines():
                if line.startswith(who + "\t"):
                    newest = line.split("\t")[1]
        assert newest, f"no initial password of {who} in {self.secrets}"
        return newest


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scratch]:
    path = tmp_path_factory.mktemp("inv") / f"lab-accounts-{uuid.uuid4().hex[:6]}"
    shutil.copytree(ROOT / "inventories" / "lab", path)
    # The lab's deploy left the registry's initial passwords on the host;
    # collect them first, so that this module's files are its own.
    hopthu("accounts", "apply", "--inventory", "lab", "--limit", "mail1")
    yield Scratch(path)
    # The lab's own registry again (what this module added is archived).
    result = hopthu("accounts", "apply", "--inventory", "lab", "--limit", "mail1")
    assert result.returncode == 0, result.stdout + result.stderr
    shutil.rmtree(ROOT / "secrets" / path.name, ignore_errors=True)


def state_of_host() -> str:
    """What must not change when input is refused: the database and the audit log."""
    return on_host("mail1", f"sha256sum {USERS_DB} /var/lib/hopthu/userdb/postfix.sqlite; "
                            f"wc -c < {AUDIT_LOG} 2>/dev/null || echo 0")


def login_error(who: str, password: str) -> str:
    """The IMAP login's refusal, or "" when it succeeds."""
    client = imaplib.IMAP4_SSL(address(), 993, ssl_context=tls_context(), timeout=60)
    try:
        client.login(who, password)
    except imaplib.IMAP4.error as exc:
        with contextlib.suppress(OSError):
            client.shutdown()
        return str(exc)
    client.logout()
    return ""


def from_peer(recipient: str, message_id: str) -> list[Any]:
    """Try RCPT from peer1 ("the Internet") on port 25; when it is accepted, send
    one message. The replies of the try: [EHLO, MAIL, RCPT]."""
    return on_peer(PEER_SMTP + f"""
replies = exchange(25, ["MAIL FROM:<alice@peer.test>", "RCPT TO:<{recipient}>"])
if replies[2][0] == 250:
    s = smtplib.SMTP(TARGET, 25, timeout=30)
    s.ehlo("peer1.peer.test")
    s.sendmail("alice@peer.test", ["{recipient}"],
               "From: alice@peer.test\\r\\nTo: {recipient}\\r\\nSubject: registry test\\r\\n"
               "Message-ID: {message_id}\\r\\n\\r\\nhello\\r\\n")
    s.quit()
print(json.dumps(replies))
""")


# --- Bad input changes nothing --------------------------------------------------------------


@pytest.mark.control("ART4-FORMAT")
@pytest.mark.control("ART4-ONE-PERSONAL")
@pytest.mark.control("ART9-UNICODE")
@pytest.mark.control("ART13-DELEGATE")
def test_a_bad_registry_is_refused_by_both_paths_and_the_host_is_unchanged(
    scratch: Scratch,
) -> None:
    before = state_of_host()
    entries = lab_registry() + [
        # a second personal mailbox for dungpt's staff ID
        {"address": f"dung2@{DOMAIN}", "kind": "personal", "staff_id": "LAB-0101",
         "unit": "Văn phòng Bộ", "display_name": "Phạm Thị Dung"},
        # "Hà Nội" typed in TCVN3 (ABC) and pasted from an old document
        {"address": f"hanoi@{DOMAIN}", "kind": "personal", "staff_id": "LAB-0902",
         "unit": "Sở Tư pháp", "display_name": "Hµ Néi"},
        # a unit mailbox whose delegate does not exist
        {"address": f"donvi@{DOMAIN}", "kind": "unit", "unit": "Vụ Pháp chế",
         "display_name": "Đơn vị thử", "owner": f"quangdv@{DOMAIN}",
         "delegates": [f"khongco@{DOMAIN}"]},
        # not an address
        {"address": "Sai Dia Chi@moj", "kind": "alias", "unit": "Vụ Pháp chế",
         "display_name": "Sai", "targets": [f"quangdv@{DOMAIN}"]},
    ]
    scratch.registry(entries)
    result = scratch.apply(expect=2)
    text = result.stderr
    assert "nothing was applied" in text
    assert "staff_id LAB-0101 already has a personal mailbox" in text
    assert "TCVN3" in text and "Hà Nội" in text
    assert f"the delegate khongco@{DOMAIN} is not in the registry" in text
    assert "'Sai Dia Chi@moj' is not account@domain" in text
    # The engines stop at their first check too, before any host is touched.
    ansible = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "-i",
         str(scratch.path / "hosts.yml"), str(ROOT / "site.yml"), "--limit", "mail1"],
        cwd=ROOT, text=True, capture_output=True, timeout=300, check=False)
    assert ansible.returncode != 0
    assert "staff_id LAB-0101 already has a personal mailbox" in ansible.stdout
    assert "Build the base of every host" not in ansible.stdout
    assert state_of_host() == before


# --- The lifecycle ------------------------------------------------------------------------


@pytest.mark.control("ART6-LIFECYCLE")
@pytest.mark.control("ART6-ARCHIVE")
@pytest.mark.control("ART11-3-ISSUE")
@pytest.mark.control("ART14-FIRST-LOGIN")
@pytest.mark.control("ART14-RESET")
def test_create_first_login_archive_forward_restore_rename_and_reset(scratch: Scratch) -> None:
    who = NEWCOMER["address"]
    binh = account("binh")

    # Plan: what apply would do, and nothing done.
    scratch.registry(lab_registry() + [dict(NEWCOMER)])
    before = state_of_host()
    plan = hopthu("accounts", "plan", "--inventory", str(scratch.path), "--limit", "mail1")
    assert plan.returncode == 0, plan.stdout + plan.stderr
    assert f"mail1: changed: account {who}: created (personal, active" in plan.stdout
    assert state_of_host() == before

    # Create: an initial password, given once, that reads and sends no mail.
    result = scratch.apply()
    assert f"account {who}: created (personal, active, initial password issued" in result.stdout
    initial = scratch.password(who)
    assert "password portal" in login_error(who, initial)
    with submission(None) as smtp, pytest.raises(smtplib.SMTPAuthenticationError):
        smtp.login(who, initial)
    # A second apply changes nothing.
    assert "mail1: hopthu-userdb: unchanged" in scratch.apply().stdout

    # The holder sets a password of their own (the portal's job).
    chosen = f"Lab-Thu-{uuid.uuid4().hex[:10]}"
    set_password_as_the_portal_would(who, chosen)
    assert login_error(who, chosen) == ""
    user = Account(who, chosen, NEWCOMER["display_name"], 100 << 20)
    kept = f"<{uuid.uuid4().hex}@peer.test>"
    assert from_peer(who, kept)[2][0] == 250
    raw = fetch_by_message_id(user, kept)
    assert len(raw) == 1
    digest = hashlib.sha256(raw[0]).hexdigest()

    # Archive: no login, mail refused with a reason, every message kept.
    archived = dict(NEWCOMER, state="archived")
    scratch.registry(lab_registry() + [archived])
    scratch.apply()
    assert login_error(who, chosen) != ""
    replies = from_peer(who, f"<{uuid.uuid4().hex}@peer.test>")
    assert replies[2][0] == 550 and "5.1.6" in replies[2][1] and "archived" in replies[2][1]
    on_host("mail1", f"grep -rlF {shlex.quote(kept)} /var/vmail/{DOMAIN}/thutv{RUN}/Maildir")

    # Archive with a forward: its mail goes to the unit's chosen address.
    scratch.registry(lab_registry() + [dict(archived, forward_to=binh.address)])
    scratch.apply()
    forwarded = f"<{uuid.uuid4().hex}@peer.test>"
    assert from_peer(who, forwarded)[2][0] == 250
    assert len(fetch_by_message_id(binh, forwarded)) == 1

    # Restore: the same password, the same messages.
    scratch.registry(lab_registry() + [dict(NEWCOMER)])
    scratch.apply()
    assert login_error(who, chosen) == ""
    assert [hashlib.sha256(r).hexdigest() for r in fetch_by_message_id(user, kept)] == [digest]

    # Rename: the mail moves with the account; the old address still receives.
    renamed = dict(NEWCOMER, address=f"thutran{RUN}@{DOMAIN}", previous=[who])
    scratch.registry(lab_registry() + [renamed])
    result = scratch.apply()
    assert f"account {who}: renamed to thutran{RUN}@{DOMAIN}" in result.stdout
    moved = Account(f"thutran{RUN}@{DOMAIN}", chosen, NEWCOMER["display_name"], 100 << 20)
    assert [hashlib.sha256(r).hexdigest() for r in fetch_by_message_id(moved, kept)] == [digest]
    via_old = f"<{uuid.uuid4().hex}@peer.test>"
    assert from_peer(who, via_old)[2][0] == 250
    assert len(fetch_by_message_id(moved, via_old)) == 1
    assert login_error(who, chosen) != ""

    # The support desk's reset: a new must-change password; the ticket is logged.
    result = hopthu("accounts", "reset-password", moved.address, "--ticket", "CV-LAB-0042",
                    "--inventory", str(scratch.path), "--limit", "mail1")
    assert result.returncode == 0, result.stdout + result.stderr
    scratch.collect(result)
    fresh = scratch.password(moved.address)
    assert fresh != initial
    assert login_error(moved.address, chosen) != ""
    assert "password portal" in login_error(moved.address, fresh)

    # The audit log: every operation, with the registry's commit and the operator.
    records = [json.loads(line) for line in on_host("mail1", f"cat {AUDIT_LOG}").splitlines()]
    ours = [(r["operation"], r["address"]) for r in records
            if r["address"] in (who, moved.address)]
    for step in [("create", who), ("archive", who), ("update", who), ("restore", who),
                 ("rename", moved.address), ("alias", who),
                 ("reset-password", moved.address)]:
        assert step in ours, f"{step} is not in the audit log: {ours}"
    reset = [r for r in records if r["operation"] == "reset-password"][-1]
    assert reset["ticket"] == "CV-LAB-0042" and reset["operator"]
    # Registry operations carry the commit; a reset (a support ticket) and a
    # change in the portal (the holder) have none to carry.
    assert all(r["commit"] for r in records if r["address"] in (who, moved.address)
               and r["operation"] not in ("reset-password", "change-password"))


# --- Unit mailboxes --------------------------------------------------------------------------


@pytest.mark.control("ART4-UNIT")
@pytest.mark.control("ART13-DELEGATE")
def test_the_owner_and_a_delegate_send_as_the_unit_and_nobody_else(scratch: Scratch) -> None:
    """vanphongbo@ (the lab registry's unit mailbox): its owner dungpt@ and its
    delegate quangdv@ may send as it through 587; binh@, who is neither, may not."""
    unit = f"vanphongbo@{DOMAIN}"
    scratch.registry(lab_registry())
    scratch.apply()
    people = {}
    for who in (f"dungpt@{DOMAIN}", f"quangdv@{DOMAIN}"):
        chosen = f"Lab-Unit-{uuid.uuid4().hex[:10]}"
        scratch.issued.add(chosen)
        set_password_as_the_portal_would(who, chosen)
        people[who] = Account(who, chosen, who, 0)
    binh = account("binh")
    for person in people.values():
        message_id = f"<{uuid.uuid4().hex}@moj.gov.vn>"
        message = (f"From: {unit}\r\nTo: {binh.address}\r\nSubject: unit mail\r\n"
                   f"Message-ID: {message_id}\r\n\r\nsent by {person.address}\r\n").encode()
        with submission(person) as smtp:
            assert not smtp.sendmail(unit, [binh.address], message)
        assert len(fetch_by_message_id(binh, message_id)) == 1
    with submission(binh) as smtp, pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        smtp.sendmail(unit, [binh.address], b"Subject: not mine\r\n\r\nx\r\n")
    [(code, text)] = refused.value.recipients.values()
    assert code == 553 and b"not owned by user" in text


def shared_view(person: Account, unit: str, message_id: str) -> dict[str, Any]:
    """What `person` sees of the unit mailbox over IMAP: whether LIST shows it,
    SELECT opens it, the message is there, and their rights (RFC 4314 MYRIGHTS)."""
    folder = f'"shared/{unit}"'
    with imap(person) as client:
        _, listed = client.list('""', '"shared/*"')
        names = [line.decode() for line in listed if line]
        status, _ = client.select(folder, readonly=True)
        view: dict[str, Any] = {"listed": any(f'"shared/{unit}"' in n or n.endswith(
            f" shared/{unit}") for n in names), "opened": status == "OK", "found": False,
            "rights": ""}
        if status == "OK":
            _, data = client.search(None, "HEADER", "Message-ID", message_id)
            view["found"] = bool(data[0].split())
            status, data = client.myrights(folder)
            if status == "OK":
                view["rights"] = data[0].decode().rsplit(" ", 1)[-1]
    return view


@pytest.mark.control("ART13-DELEGATE")
@pytest.mark.control("ART11-5-ACCESS")
def test_the_owner_and_a_delegate_read_the_unit_mailbox_and_nobody_else(scratch: Scratch) -> None:
    """vanphongbo@'s owner dungpt@ and delegate quangdv@ find it under
    shared/vanphongbo@moj.gov.vn/ and read its mail (the delegate may not delete
    any); binh@, who is neither, can neither list nor open it; a delegate the
    registry drops loses it in the same `hopthu accounts apply`."""
    unit, owner, delegate = (f"vanphongbo@{DOMAIN}", f"dungpt@{DOMAIN}", f"quangdv@{DOMAIN}")
    scratch.registry(lab_registry())
    scratch.apply()
    people = {}
    for who in (owner, delegate):
        chosen = f"Lab-Read-{uuid.uuid4().hex[:10]}"
        scratch.issued.add(chosen)
        set_password_as_the_portal_would(who, chosen)
        people[who] = Account(who, chosen, who, 0)
    message_id = f"<{uuid.uuid4().hex}@peer.test>"
    assert from_peer(unit, message_id)[2][0] == 250

    def settled(person: Account) -> dict[str, Any]:
        deadline = time.monotonic() + 60
        while not (view := shared_view(person, unit, message_id))["found"] \
                and time.monotonic() < deadline:
            time.sleep(1)
        return view

    head = settled(people[owner])
    assert head["listed"] and head["opened"] and head["found"], head
    # lookup, read, write, write-seen, write-deleted, insert, post, expunge,
    # and "d", which RFC 4314 §2.1.1 reports for the RFC 2086 clients
    # whenever "t" and "e" are both held.
    assert set(head["rights"]) == set("lrwstiped"), head
    helper = settled(people[delegate])
    assert helper["listed"] and helper["opened"] and helper["found"], helper
    # No t (write-deleted) and no e (expunge): a delegate deletes nothing.
    assert set(helper["rights"]) == set("lrwsip"), helper
    stranger = shared_view(account("binh"), unit, message_id)
    assert stranger == {"listed": False, "opened": False, "found": False, "rights": ""}

    # The registry drops the delegate: this apply takes the rights away.
    entries = lab_registry()
    for entry in entries:
        if entry["address"] == unit:
            entry["delegates"] = []
    scratch.registry(entries)
    result = scratch.apply()
    assert f"user={delegate} removed" in result.stdout, result.stdout
    gone = shared_view(people[delegate], unit, message_id)
    assert not gone["listed"] and not gone["opened"], gone
    assert shared_view(people[owner], unit, message_id)["found"]
    # And back: the lab's registry again.
    scratch.registry(lab_registry())
    scratch.apply()
    assert shared_view(people[delegate], unit, message_id)["found"]


@pytest.mark.control("ART13-HANDOVER")
@pytest.mark.control("ART13-DELEGATE")
def test_handover_keeps_every_message_and_shuts_the_former_head_out(scratch: Scratch) -> None:
    unit = f"vanphongbo@{DOMAIN}"
    former, head = f"dungpt@{DOMAIN}", f"hoanm@{DOMAIN}"
    entries = lab_registry() + [{"address": head, "kind": "personal", "staff_id": "LAB-0921",
                                 "unit": "Văn phòng Bộ", "display_name": "Nguyễn Minh Hoà"}]
    scratch.registry(entries)
    scratch.apply()
    passwords = {}
    for who in (unit, former, head):
        passwords[who] = f"Lab-Hand-{uuid.uuid4().hex[:10]}"
        scratch.issued.add(passwords[who])
        set_password_as_the_portal_would(who, passwords[who])
    for _ in range(3):
        assert from_peer(unit, f"<{uuid.uuid4().hex}@peer.test>")[2][0] == 250

    def contents(password: str) -> list[str]:
        with imap(Account(unit, password, "", 0)) as client:
            client.select("INBOX", readonly=True)
            _, data = client.search(None, "ALL")
            digests = []
            for number in data[0].split():
                _, parts = client.fetch(number, "(BODY.PEEK[])")
                digests.append(hashlib.sha256(bytes(parts[0][1])).hexdigest())
            return sorted(digests)

    deadline = time.monotonic() + 60
    while len(before := contents(passwords[unit])) < 3 and time.monotonic() < deadline:
        time.sleep(1)
    assert len(before) >= 3

    result = hopthu("accounts", "handover", unit, "--to", head, "--ticket", "QD-LAB-0007",
                    "--inventory", str(scratch.path), "--limit", "mail1")
    assert result.returncode == 0, result.stdout + result.stderr
    scratch.collect(result)
    assert f"owner {former} -> {head}" in result.stdout
    registry = yaml.safe_load((scratch.path / "accounts.yml").read_text("utf-8"))["accounts"]
    assert next(e for e in registry if e["address"] == unit)["owner"] == head
    # The unit's old password is gone; the new one is a must-change password.
    fresh = scratch.password(unit)
    assert login_error(unit, passwords[unit]) != ""
    assert "password portal" in login_error(unit, fresh)
    passwords[unit] = f"Lab-Hand-{uuid.uuid4().hex[:10]}"
    scratch.issued.add(passwords[unit])
    set_password_as_the_portal_would(unit, passwords[unit])
    assert contents(passwords[unit]) == before
    # The new head sends as the unit; the former head no longer may.
    binh = account("binh")
    message = b"Subject: handover\r\n\r\nx\r\n"
    with submission(Account(head, passwords[head], "", 0)) as smtp:
        assert not smtp.sendmail(unit, [binh.address], message)
    with submission(Account(former, passwords[former], "", 0)) as smtp, \
            pytest.raises(smtplib.SMTPRecipientsRefused):
        smtp.sendmail(unit, [binh.address], message)
    # The new head reads the unit mailbox; the former head no longer may.
    probe = f"<{uuid.uuid4().hex}@peer.test>"
    assert from_peer(unit, probe)[2][0] == 250
    deadline = time.monotonic() + 60
    while not (view := shared_view(Account(head, passwords[head], "", 0), unit, probe))["found"]:
        assert time.monotonic() < deadline, view
        time.sleep(1)
    assert view["listed"], view
    shut = shared_view(Account(former, passwords[former], "", 0), unit, probe)
    assert not shut["listed"] and not shut["opened"], shut
    records = [json.loads(line) for line in on_host("mail1", f"cat {AUDIT_LOG}").splitlines()]
    assert any(r["operation"] == "reset-password" and r["address"] == unit
               and r["ticket"] == "QD-LAB-0007" for r in records)
    assert any(r["operation"] == "update" and r["address"] == unit and "owner" in r["change"]
               for r in records)


# --- Client setup (Art. 10) --------------------------------------------------------------------


@pytest.mark.control("ART10-ACCESS")
def test_autoconfig_and_autodiscover_announce_servers_that_answer() -> None:
    """Thunderbird's autoconfig (GET, two paths) and Outlook's autodiscover
    (POST) from the portal's nginx; every server and port they announce
    answers with TLS as announced, with the lab CA."""
    import socket
    import urllib.request
    import xml.etree.ElementTree as ET

    from mailcore import tls_context

    def fetch(path: str, data: bytes | None = None) -> ET.Element:
        request = urllib.request.Request(f"https://{address()}{path}", data=data,
                                         headers={"Content-Type": "text/xml"})
        with urllib.request.urlopen(request, context=tls_context(), timeout=30) as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("application/xml")
            return ET.fromstring(response.read())

    config = fetch("/mail/config-v1.1.xml")
    assert ET.tostring(fetch("/.well-known/autoconfig/mail/config-v1.1.xml")) == \
        ET.tostring(config)
    servers = [(s.get("type"), s.findtext("hostname"), int(s.findtext("port")),
                s.findtext("socketType"))
               for s in config.iter() if s.tag in ("incomingServer", "outgoingServer")]
    assert {(t, p, k) for t, _, p, k in servers} == {
        ("imap", 993, "SSL"), ("pop3", 995, "SSL"), ("smtp", 465, "SSL"),
        ("smtp", 587, "STARTTLS")}
    assert config.findtext("emailProvider/domain") == DOMAIN
    ns = {"a": "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"}
    outlook = fetch("/autodiscover/autodiscover.xml",
                    data=b"<Autodiscover><Request><EMailAddress>an@moj.gov.vn</EMailAddress>"
                         b"</Request></Autodiscover>")
    protocols = {(p.findtext("a:Type", namespaces=ns), int(p.findtext("a:Port", namespaces=ns)))
                 for p in outlook.iterfind(".//a:Protocol", ns)}
    assert protocols == {("IMAP", 993), ("SMTP", 465)}
    # The lab's mail names are not in the controller's DNS: each announced
    # host is mail1 here, reached by its address, its name checked by TLS.
    for kind, host, port, socket_type in servers:
        assert host == f"mail1.{DOMAIN}", (kind, host)
        if kind == "smtp" and socket_type == "STARTTLS":
            with smtplib.SMTP(address(), port, timeout=30) as smtp:
                smtp.ehlo("client.lab.test")
                assert smtp.has_extn("starttls")
                smtp.starttls(context=tls_context())
                assert smtp.ehlo("client.lab.test")[0] == 250
        elif kind == "smtp":
            with smtplib.SMTP_SSL(address(), port, timeout=30, context=tls_context()) as smtp:
                assert smtp.ehlo("client.lab.test")[0] == 250
        else:
            with socket.create_connection((address(), port), timeout=30) as raw, \
                    tls_context().wrap_socket(raw, server_hostname=address()) as tls:
                greeting = tls.recv(200)
            assert greeting.startswith(b"* OK" if kind == "imap" else b"+OK"), (kind, greeting)


# --- The directory (Art. 5) -------------------------------------------------------------------


@pytest.mark.control("ART5-DIRECTORY")
@pytest.mark.control("ART6-LIFECYCLE")
def test_the_published_directory_lists_exactly_the_active_accounts_in_vietnamese_order(
    scratch: Scratch,
) -> None:
    """`hopthu accounts apply` publishes the directory of the registry it
    applied, in the same run; the page lists the active entries only, in the
    order of hopthu.accounts.directory (Vietnamese collation), and the vCard
    and LDIF files parse."""
    import base64
    import csv
    import html.parser
    import io
    import urllib.request

    from mailcore import tls_context

    from hopthu.accounts.directory import ordered
    from hopthu.accounts.registry import validate

    entries = lab_registry() + [
        {"address": f"anhdv@{DOMAIN}", "kind": "personal", "staff_id": "LAB-0911",
         "unit": "Vụ Pháp chế", "display_name": "Đặng Văn Ánh"},
        {"address": f"anhlt@{DOMAIN}", "kind": "personal", "staff_id": "LAB-0912",
         "unit": "Vụ Pháp chế", "display_name": "Lê Thị Anh"},
        {"address": f"nghi@{DOMAIN}", "kind": "personal", "staff_id": "LAB-0913",
         "unit": "Văn phòng Bộ", "display_name": "Trần Thị Nghỉ", "state": "disabled"},
        {"address": f"cu@{DOMAIN}", "kind": "personal", "staff_id": "LAB-0914",
         "unit": "Văn phòng Bộ", "display_name": "Ngô Văn Cũ", "state": "archived"},
    ]
    scratch.registry(entries)
    result = scratch.apply()
    assert "mail1: directory published" in result.stdout
    active = [e for e in validate(entries, domains={DOMAIN}) if e["state"] == "active"]
    expected = [e["address"] for e in ordered(active)]

    def get(path: str) -> bytes:
        with urllib.request.urlopen(f"https://{address()}/danh-ba/{path}",
                                    context=tls_context(), timeout=30) as response:
            assert response.status == 200
            return response.read()

    class Mailtos(html.parser.HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.found: list[str] = []

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            href = dict(attrs).get("href") or ""
            if tag == "a" and href.startswith("mailto:"):
                self.found.append(href.removeprefix("mailto:"))

    page = Mailtos()
    page.feed(get("").decode("utf-8"))
    assert page.found == expected
    rows = list(csv.DictReader(io.StringIO(get("directory.csv").decode("utf-8-sig"))))
    assert [r["address"] for r in rows] == expected
    assert {r["display_name"] for r in rows} >= {"Đặng Văn Ánh", "Lê Thị Anh"}
    vcards = get("directory.vcf").decode("utf-8").replace("\r\n ", "").split("\r\n")
    assert vcards.count("BEGIN:VCARD") == len(expected) == vcards.count("VERSION:4.0")
    assert sorted(line.split(":", 1)[1] for line in vcards if line.startswith("EMAIL")) == \
        sorted(expected)
    ldif = get("directory.ldif").decode("ascii").replace("\n ", "").splitlines()
    mails = [line.split(": ", 1)[1] for line in ldif if line.startswith("mail: ")]
    names = [base64.b64decode(line.split(":: ", 1)[1]).decode("utf-8")
             for line in ldif if line.startswith("displayName:: ")]
    assert sorted(mails) == sorted(expected)
    assert "Đặng Văn Ánh" in names and "Trần Thị Nghỉ" not in names
    # A second apply publishes nothing new.
    assert "mail1: directory unchanged" in scratch.apply().stdout


# --- The password portal, in a real browser -------------------------------------------------

PORTAL = f"https://{address()}/"
#: Where CI keeps the screenshots (reports/ is its artefact directory).
SHOTS = ROOT / "reports" / "lab" / "screenshots"


def spki_pin(cert_file: Path) -> str:
    """Chromium's --ignore-certificate-errors-spki-list value for one certificate:
    the browser then accepts mail1's own key and nothing else."""
    import base64

    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    spki = cert.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


@contextlib.contextmanager
def browser() -> Iterator[Any]:
    """Debian's Chromium, headless, driven by Debian's chromedriver (nothing is
    downloaded), trusting mail1's certificate key only."""
    import os

    from mailcore import lab_settings
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    for path in ("/usr/bin/chromium", "/usr/bin/chromedriver"):
        assert Path(path).exists(), f"{path} is missing: apt-get install chromium chromium-driver"
    os.environ["SE_OFFLINE"] = "true"
    cert = Path(lab_settings()["pki__ca_dir"]) / "hosts" / "mail1.crt"
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    # A Vietnamese user's browser (Accept-Language); --lang alone does not
    # reach headless Chromium's requests.
    options.add_experimental_option("prefs", {"intl.accept_languages": "vi-VN,vi"})
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--window-size=900,1000", "--lang=vi-VN",
                     f"--ignore-certificate-errors-spki-list={spki_pin(cert)}"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def submit_form(driver: Any, who: str, current: str, new: str, repeat: str) -> str:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(PORTAL)
    for field, value in (("address", who), ("current", current), ("new", new),
                         ("repeat", repeat)):
        element = driver.find_element(By.ID, field)
        element.clear()
        element.send_keys(value)
    old = driver.find_element(By.TAG_NAME, "html")
    driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    WebDriverWait(driver, 30).until(expected_conditions.staleness_of(old))
    return driver.page_source


def restart_portal() -> None:
    """A fresh portal process: its rate-limit counters live in its memory."""
    on_host("mail1", "systemctl restart hopthu-portal.service && for i in $(seq 40); do "
                     "python3 -c 'import urllib.request; urllib.request.urlopen("
                     "\"http://127.0.0.1:8087/healthz\", timeout=5)' 2>/dev/null && exit 0; "
                     "sleep 0.5; done; exit 1", timeout=60)


@pytest.mark.control("ART14-FIRST-LOGIN")
@pytest.mark.control("ART11-3-ISSUE")
def test_the_holder_sets_a_password_in_the_portal_and_mail_works_at_once(
    scratch: Scratch,
) -> None:
    who = f"lanpt{RUN}@{DOMAIN}"
    entry = {"address": who, "kind": "personal", "staff_id": f"LAB-{RUN.upper()}-3",
             "unit": "Văn phòng Bộ", "display_name": "Phạm Thị Lan", "quota": "100 MiB"}
    scratch.registry(lab_registry() + [entry])
    scratch.apply()
    initial = scratch.password(who)
    assert "password portal" in login_error(who, initial)
    chosen = f"Lan-Moi-{uuid.uuid4().hex[:8]}-2026"
    scratch.issued.add(chosen)
    restart_portal()
    SHOTS.mkdir(parents=True, exist_ok=True)
    with browser() as driver:
        driver.get(PORTAL)
        from selenium.webdriver.common.by import By

        assert driver.find_element(By.TAG_NAME, "html").get_attribute("lang") == "vi"
        assert "Đổi mật khẩu" in driver.page_source
        driver.save_screenshot(str(SHOTS / "portal-form-vi.png"))
        # The policy, in Vietnamese: each refusal says why; nothing changes.
        assert "Mật khẩu mới quá ngắn" in submit_form(driver, who, initial, "Ngan-1", "Ngan-1")
        page = submit_form(driver, who, initial, initial, initial)
        assert "Mật khẩu mới phải khác mật khẩu hiện tại" in page
        driver.save_screenshot(str(SHOTS / "portal-refused-vi.png"))
        assert "password portal" in login_error(who, initial)
        # The change.
        page = submit_form(driver, who, initial, chosen, chosen)
        assert "Đã đổi mật khẩu" in page, page[:2000]
        for secret in (initial, chosen):
            assert secret not in page
        driver.save_screenshot(str(SHOTS / "portal-success-vi.png"))
        # The same page in English.
        driver.get(PORTAL + "?lang=en")
        assert driver.find_element(By.TAG_NAME, "html").get_attribute("lang") == "en"
        assert "Change your password" in driver.page_source
        driver.save_screenshot(str(SHOTS / "portal-form-en.png"))
    # Mail works at once with the new password, and the initial one is dead.
    assert login_error(who, chosen) == ""
    assert login_error(who, initial) != ""
    with submission(Account(who, chosen, entry["display_name"], 100 << 20)) as smtp:
        assert smtp.noop()[0] == 250
    records = [json.loads(line) for line in on_host("mail1", f"cat {AUDIT_LOG}").splitlines()]
    assert any(r["operation"] == "change-password" and r["address"] == who for r in records)


@pytest.mark.control("ART11-5-ACCESS")
def test_the_portal_refuses_forged_posts_and_limits_attempts(scratch: Scratch) -> None:
    import http.cookiejar
    import re
    import urllib.error
    import urllib.parse
    import urllib.request

    from mailcore import tls_context

    restart_portal()
    opener = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()),
        urllib.request.HTTPSHandler(context=tls_context()))

    def post(fields: dict[str, str]) -> tuple[int, str, dict[str, str]]:
        request = urllib.request.Request(PORTAL, data=urllib.parse.urlencode(fields).encode(),
                                         method="POST")
        try:
            with opener.open(request, timeout=30) as response:
                return response.status, response.read().decode(), dict(response.headers)
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(), dict(exc.headers)

    with opener.open(PORTAL, timeout=30) as response:
        form = response.read().decode()
    token = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
    fields = {"address": f"khongco@{DOMAIN}", "current": "Sai-mat-khau-1",
              "new": "Mat-Khau-Moi-2026", "repeat": "Mat-Khau-Moi-2026"}
    # Without the form's token (a forged cross-site post): refused, not counted.
    status, _, _ = post(fields)
    assert status == 400
    status, _, _ = post({**fields, "csrf_token": "x" * len(token)})
    assert status == 400
    # A wrong password: one generic answer, whether or not the account exists.
    statuses = [post({**fields, "csrf_token": token})[0] for _ in range(5)]
    assert statuses == [403] * 5
    status, _body, headers = post({**fields, "csrf_token": token})
    assert status == 429 and int(headers["Retry-After"]) > 0
    restart_portal()  # the next visitor from this address starts afresh


@pytest.mark.control("ART11-3-ISSUE")
def test_no_initial_password_is_in_any_log_of_the_host(scratch: Scratch) -> None:
    assert scratch.issued, "the tests before this one issued no password"
    patterns = "\n".join(sorted(scratch.issued))
    from hopthu.lab import ssh_run

    # Every log and the whole journal; the files are read, never printed.
    _rc, out, _err = ssh_run(
        "mail1",
        "f=$(mktemp); cat > $f; "
        "{ journalctl --no-pager -o cat; find /var/log -type f -exec cat {} +; } 2>/dev/null "
        "| grep -cFf $f; rm -f $f",
        input=patterns + "\n", timeout=120)
    assert out.strip() == "0", f"an initial password is in a log of mail1 ({out.strip()} lines)"
    # ... and none is left on the host: apply moved the files to the controller.
    assert on_host("mail1", "ls /var/lib/hopthu/userdb/initial-passwords").strip() == ""
