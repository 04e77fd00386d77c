"""The rspamd role and its pyinfra deploy: what they write, and what it says.

Offline checks of the filtering configuration (roles/rspamd, roles/redis,
the milter in Postfix's main.cf): both engines own the same drop-in files
and run the same host scripts, the DKIM public record the host script makes
is what `hopthu dns` and the lab's DNS read, and the rendered configuration
says what the content policy, the failure policy and the environments
promise. Whether Rspamd accepts it is proven in the lab (`rspamadm
configtest` before every reload, and tests/lab).
"""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jinja2
import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from hopthu import ROOT
from hopthu import dns as hdns
from hopthu.deploys import rspamd as deploy
from hopthu.render import render
from hopthu.settings import load_host

TASKS = ROOT / "roles" / "rspamd" / "tasks" / "main.yml"
REC = hdns.records_module()


def tasks() -> list[dict[str, Any]]:
    return yaml.safe_load(TASKS.read_text(encoding="utf-8"))


def task(name: str) -> dict[str, Any]:
    found = [t for t in tasks() if t.get("name") == name]
    assert len(found) == 1, f"{TASKS}: expected one task named {name!r}"
    return found[0]


def host_values(inventory: str, host: str, major: int = 13) -> dict[str, Any]:
    return dict(load_host(inventory, host, extra_vars={"common__debian_major": major}).values)


@pytest.fixture(scope="module")
def mail1() -> dict[str, Any]:
    return host_values("lab", "mail1")


# --- Both engines own the same files --------------------------------------------------------


#: The one file the role writes outside Rspamd's own directories: systemd's
#: restart policy for rspamd.service (Art. 11.1).
UNIT_DROP_IN = "/etc/systemd/system/rspamd.service.d/hopthu.conf"
#: The filter health collector and its units (Art. 11.1, README.md "Metrics").
FILTER_METRICS = [
    "/usr/local/lib/hopthu/filter-metrics",
    "/etc/systemd/system/hopthu-filter-metrics.service",
    "/etc/systemd/system/hopthu-filter-metrics.timer",
]


def test_the_role_and_the_deploy_own_the_same_drop_in_files() -> None:
    templates = [t["ansible.builtin.template"]["dest"] for t in tasks()
                 if "ansible.builtin.template" in t]
    assert [d for d in templates if not d.startswith("/etc/rspamd/")] == [
        UNIT_DROP_IN, *FILTER_METRICS]
    written = [d for d in templates if d.startswith("/etc/rspamd/")]
    removal = task("Remove the files the role did not write from the Rspamd drop-in directories")
    kept = removal["vars"]["__rspamd__managed_files"]
    assert written == list(deploy.MANAGED_FILES) == kept, (
        "roles/rspamd/tasks/main.yml (its templates and the removal task's list) and "
        "hopthu/deploys/rspamd.py MANAGED_FILES must name the same files in the same order"
    )
    assert len(set(written)) == len(written)
    for dest in written:
        assert dest.startswith(tuple(d + "/" for d in deploy.DROP_IN_DIRS)), (
            f"{dest}: the role writes only in /etc/rspamd/local.d/ and override.d/"
        )
        assert (ROOT / "templates" / f"{dest.lstrip('/')}.j2").is_file()


def test_every_rspamd_template_is_a_file_the_role_writes() -> None:
    templates = sorted("/" + str(p.relative_to(ROOT / "templates"))[:-3]
                       for p in (ROOT / "templates" / "etc" / "rspamd").rglob("*.j2"))
    assert templates == sorted(deploy.MANAGED_FILES)


@pytest.mark.parametrize(("name", "script"), [
    ("Generate the DKIM key of each signing domain on the host", deploy.DKIM_KEYGEN_SCRIPT),
    ("Write the DKIM public record of each key on the host", deploy.DKIM_RECORD_SCRIPT),
    ("Generate the Rspamd controller password on the host",
     deploy.CONTROLLER_PASSWORD_SCRIPT),
])
def test_the_host_scripts_are_the_same_in_both_engines(name: str, script: str) -> None:
    argv = task(name)["ansible.builtin.command"]["argv"]
    assert argv[:2] == ["sh", "-c"]
    assert argv[2] == script, f"{name}: the role's script and hopthu/deploys/rspamd.py differ"
    # Ansible templates every argv string: a Jinja2 delimiter in the script
    # (e.g. the shell's ${#var}) would break the role but not the deploy.
    assert not re.search(r"\{[{%#]", script), f"{name}: the script holds a Jinja2 delimiter"


def test_the_scripts_make_only_what_their_creates_names() -> None:
    keygen = task("Generate the DKIM key of each signing domain on the host")
    record = task("Write the DKIM public record of each key on the host")
    password = task("Generate the Rspamd controller password on the host")
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    values = {"item": "moj.gov.vn", "rspamd__dkim_selector": "mx1"}
    assert env.from_string(keygen["ansible.builtin.command"]["creates"]).render(values) == \
        deploy.dkim_key_path("moj.gov.vn", "mx1")
    assert env.from_string(record["ansible.builtin.command"]["creates"]).render(values) == \
        deploy.dkim_record_path("moj.gov.vn", "mx1")
    assert password["ansible.builtin.command"]["creates"] == deploy.CONTROLLER_PASSWORD_INCLUDE
    script = deploy.CONTROLLER_PASSWORD_SCRIPT
    directory, _, name = deploy.CONTROLLER_PASSWORD_INCLUDE.rpartition("/")
    assert f"dir={directory}\n" in script
    assert script.rstrip().endswith(f'"$dir/{name}"'), "the include must be written last"


def test_the_controller_copy_is_named_as_hopthu_dns_reads_it() -> None:
    fetch = task("Copy the DKIM public records to the controller")["ansible.builtin.fetch"]
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    values = {"item": "moj.gov.vn", "rspamd__dkim_selector": "mx1",
              "dns__dkim_dir": "/var/lib/hopthu/dkim/production"}
    dest = env.from_string(fetch["dest"]).render(values)
    assert fetch["flat"] is True
    assert dest == deploy.controller_copy("/var/lib/hopthu/dkim/production", "moj.gov.vn", "mx1")
    assert dest == "/var/lib/hopthu/dkim/production/mx1._domainkey.moj.gov.vn.txt"
    assert env.from_string(fetch["src"]).render(values) == \
        deploy.dkim_record_path("moj.gov.vn", "mx1")


# --- The DKIM public key travels intact ------------------------------------------------------


def test_the_hosts_public_record_is_what_the_dns_publishes(tmp_path: Path) -> None:
    """The record script on a key, its controller copy, the filter, the zone: one key."""
    if not shutil.which("openssl") or not shutil.which("base64"):
        pytest.skip("needs openssl and base64 (coreutils) on the controller, as on the hosts")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    host_dir = tmp_path / "host"
    host_dir.mkdir()
    (host_dir / "moj.gov.vn.mx1.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    script = deploy.DKIM_RECORD_SCRIPT.replace(deploy.DKIM_DIR, str(host_dir))
    subprocess.run(["sh", "-c", script, "dkim-record", "moj.gov.vn", "mx1"], check=True,
                   timeout=30)
    record = (host_dir / "moj.gov.vn.mx1.txt").read_text(encoding="ascii")
    assert record.endswith("\n") and record.count("\n") == 1

    controller = tmp_path / "controller"
    copy = Path(deploy.controller_copy(str(controller), "moj.gov.vn", "mx1"))
    copy.parent.mkdir()
    copy.write_text(record, encoding="ascii")
    keys = REC.dkim_public_keys(str(controller), "moj.gov.vn")
    spki = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert keys == {"mx1": "v=DKIM1; k=rsa; p=" + base64.b64encode(spki).decode("ascii")}


# --- What the rendered configuration says ----------------------------------------------------


def ucl_problems(text: str) -> list[str]:
    """Unbalanced braces, brackets or quotes in a UCL file (comments and strings skipped)."""
    stack: list[tuple[str, int]] = []
    problems = []
    pairs = {"}": "{", "]": "["}
    for number, line in enumerate(text.splitlines(), start=1):
        quote = ""
        i = 0
        while i < len(line):
            char = line[i]
            if quote:
                if char == "\\" and quote == '"':
                    i += 1
                elif char == quote:
                    quote = ""
            elif char in "\"'":
                quote = char
            elif char == "#":
                break
            elif char in "{[":
                stack.append((char, number))
            elif char in "}]":
                if not stack or stack[-1][0] != pairs[char]:
                    problems.append(f"line {number}: unexpected {char!r}")
                else:
                    stack.pop()
            i += 1
        if quote:
            problems.append(f"line {number}: unterminated {quote} string")
    problems.extend(f"line {n}: {c!r} never closed" for c, n in stack)
    return problems


@pytest.mark.parametrize("dest", deploy.MANAGED_FILES)
@pytest.mark.parametrize(("inventory", "host"), [("lab", "mail1"), ("production", "mx1")])
def test_every_rspamd_file_is_balanced_ucl(inventory: str, host: str, dest: str) -> None:
    text = render(f"{dest.lstrip('/')}.j2", host_values(inventory, host))
    assert not ucl_problems(text), f"{dest} for {host}:\n" + "\n".join(ucl_problems(text))


def blocked(values: dict[str, Any]) -> list[re.Pattern[str]]:
    text = render("etc/rspamd/local.d/hopthu_blocked_attachments.map.j2", values)
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    patterns = []
    for line in lines:
        match = re.fullmatch(r"/(.+)/(i?)", line)
        assert match, f"{line!r} is not /REGEXP/i"
        patterns.append(re.compile(match.group(1), re.IGNORECASE if match.group(2) else 0))
    return patterns


@pytest.mark.parametrize("name", [
    "hoa-don.exe", "Hoa-Don.PDF.EXE", "setup.exe. ", "detected.exe", "bao-cao.docm",
    "so-lieu.XLSM", "trinh-chieu.pptm", "mau.dotm", "mau.xltm", "run.ps1", "app.jar",
    "script.js", "macro.vbs", "start.bat", "start.cmd", "old.com", "screen.scr", "disk.iso",
])
def test_blocked_attachment_names_match_the_map(mail1: dict[str, Any], name: str) -> None:
    assert any(p.search(name) for p in blocked(mail1)), f"{name} would pass"


@pytest.mark.parametrize("name", [
    "bao-cao.docx", "so-lieu.xlsx", "trinh-chieu.pptx", "cong-van.pdf", "hop-dong.zip",
    "anh.jpg", "exe-manual.pdf", "notes.txt", "ho-so.odt", "data.csv",
])
def test_ordinary_documents_do_not_match_the_map(mail1: dict[str, Any], name: str) -> None:
    assert not any(p.search(name) for p in blocked(mail1)), f"{name} would be refused"


def test_a_failed_virus_scan_defers_and_every_policy_refusal_says_why(
    mail1: dict[str, Any],
) -> None:
    text = render("etc/rspamd/local.d/force_actions.conf.j2", mail1)
    rule = text[text.index("HOPTHU_VIRUS_SCAN_FAILED"):text.index("HOPTHU_BLOCKED_ATTACHMENT")]
    assert 'action = "soft reject";' in rule and 'expression = "CLAM_VIRUS_FAIL";' in rule
    assert 'honor_action = ["reject"];' in rule
    assert f'message = "{mail1["rspamd__blocked_attachment_message"]}";' in text
    assert 'expression = "HOPTHU_BANNED_SUBJECT | HOPTHU_BANNED_BODY";' in text
    assert f'message = "{mail1["rspamd__banned_content_message"]}";' in text
    antivirus = render("etc/rspamd/local.d/antivirus.conf.j2", mail1)
    assert "scan_mime_parts = false;" in antivirus and 'action = "reject";' in antivirus
    assert f'servers = "{mail1["rspamd__antivirus_socket"]}";' in antivirus
    options = render("etc/rspamd/override.d/options.inc.j2", mail1)
    assert "soft_reject_on_timeout = true;" in options


def test_without_banned_patterns_no_banned_rule_is_rendered() -> None:
    values = host_values("production", "mx1")
    assert values["rspamd__banned_body_patterns"] == []
    for template in ("multimap.conf", "force_actions.conf"):
        text = render(f"etc/rspamd/local.d/{template}.j2", values)
        assert "HOPTHU_BANNED" not in text
        assert "HOPTHU_BLOCKED_ATTACHMENT" in text


def test_banned_patterns_reach_their_maps(mail1: dict[str, Any]) -> None:
    subject = render("etc/rspamd/local.d/hopthu_banned_subject.map.j2", mail1)
    body = render("etc/rspamd/local.d/hopthu_banned_body.map.j2", mail1)
    assert mail1["rspamd__banned_subject_patterns"][0] in subject.splitlines()
    assert mail1["rspamd__banned_body_patterns"][0] in body.splitlines()


def test_the_controller_needs_the_password_made_on_the_host(mail1: dict[str, Any]) -> None:
    text = render("etc/rspamd/override.d/worker-controller.inc.j2", mail1)
    assert "secure_ip = [];" in text
    assert f'.include(priority=10) "{deploy.CONTROLLER_PASSWORD_INCLUDE}"' in text
    assert f'bind_socket = "{mail1["rspamd__controller_bind"]}";' in text
    assert "password =" not in text.replace("# ", "")


@pytest.mark.parametrize(("inventory", "host"), [
    ("lab", "mail1"), ("staging", "mail-stg1"), ("production", "mx1"),
])
def test_postfix_hands_every_message_to_the_rspamd_milter(inventory: str, host: str) -> None:
    values = host_values(inventory, host)
    main_cf = render("etc/postfix/main.cf.j2", values)
    proxy = render("etc/rspamd/local.d/worker-proxy.inc.j2", values)
    assert f"smtpd_milters = inet:{values['rspamd__milter_bind']}\n" in main_cf
    assert "non_smtpd_milters = $smtpd_milters\n" in main_cf
    assert "milter_default_action = tempfail\n" in main_cf
    assert ("milter_mail_macros = i {mail_addr} {client_addr} {client_name} {auth_authen}\n"
            in main_cf)
    assert f'bind_socket = "{values["rspamd__milter_bind"]}";' in proxy
    assert "milter = yes;" in proxy and "self_scan = yes;" in proxy


def test_a_host_without_rspamd_renders_no_milter(mail1: dict[str, Any]) -> None:
    main_cf = render("etc/postfix/main.cf.j2", {**mail1, "postfix__smtpd_milters": []})
    assert "smtpd_milters = \n" in main_cf
    assert "milter_default_action = tempfail\n" in main_cf


@pytest.mark.parametrize(("inventory", "host", "lookups", "greylisting"), [
    ("lab", "mail1", False, False),
    ("staging", "mail-stg1", False, True),
    ("production", "mx1", True, True),
])
def test_internet_lookups_and_greylisting_follow_the_environment(
    inventory: str, host: str, lookups: bool, greylisting: bool,
) -> None:
    values = host_values(inventory, host)
    word = {True: "true", False: "false"}
    for template in ("rbl.conf", "asn.conf"):
        text = render(f"etc/rspamd/local.d/{template}.j2", values)
        assert f"enabled = {word[lookups]};" in text, f"{template} for {host}"
    for template in ("fuzzy_check.conf", "url_redirector.conf"):
        text = render(f"etc/rspamd/local.d/{template}.j2", values)
        assert "enabled = false;" in text, f"{template}: no Internet services by default"
    text = render("etc/rspamd/local.d/greylist.conf.j2", values)
    assert f"enabled = {word[greylisting]};" in text


def test_only_loopback_is_local_and_signing_uses_the_hosts_selector(
    mail1: dict[str, Any],
) -> None:
    options = render("etc/rspamd/override.d/options.inc.j2", mail1)
    assert 'local_addrs = ["127.0.0.0/8", "::1/128"];' in options
    for template in ("dkim_signing.conf", "arc.conf"):
        text = render(f"etc/rspamd/local.d/{template}.j2", mail1)
        assert 'selector = "mail1";' in text
        assert 'path = "/var/lib/rspamd/dkim/moj.gov.vn.mail1.key";' in text
        assert "try_fallback = false;" in text


def test_redis_listens_on_loopback_with_a_ceiling_and_snapshots(mail1: dict[str, Any]) -> None:
    text = render("etc/redis/redis.conf.j2", mail1)
    assert "bind 127.0.0.1 -::1\n" in text and "protected-mode yes\n" in text
    assert "maxmemory 512mb\nmaxmemory-policy volatile-ttl\n" in text
    assert "save 3600 1 300 100 60 10000\n" in text
    assert 'save ""' in render("etc/redis/redis.conf.j2", {**mail1, "redis__save": []})


@pytest.mark.parametrize(("inventory", "host"), [("lab", "mail1"), ("production", "mx1")])
def test_the_firewall_opens_nothing_for_rspamd_or_redis(inventory: str, host: str) -> None:
    values = host_values(inventory, host)
    rules = render("etc/nftables.conf.j2", values)
    assert re.search(r"\b25\b", rules), "the MX's port 25 should be open (sanity check)"
    for port in ("11332", "11333", "11334", "11335", "6379"):
        assert port not in rules, f"{host}: the firewall mentions port {port}"
    for key in ("rspamd__milter_bind", "rspamd__controller_bind"):
        assert values[key].startswith(("localhost:", "127.0.0.1:", "[::1]:"))
