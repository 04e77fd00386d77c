"""The backup role and its pyinfra deploy: the keys, the passphrase, what they write.

Offline checks of roles/backup (ART11-7-BACKUP): both engines run the same
host scripts; the backup host's authorized_keys forces every store's key to
an append-only `borg serve` of that store's repository alone; the stores pin
the backup host's key; the passphrase comes from the inventory's secrets
(plain 0600 or ansible-vault) and a missing one stops the deploy with what
to do; the play covers the stores and the backup host in every inventory.
That the hosts really behave so is tests/lab/test_backup.py.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from hopthu import ROOT
from hopthu.backup import passphrase
from hopthu.deploys import backup as deploy
from hopthu.render import load_filters, render
from hopthu.settings import load_host, load_inventory

TASKS = ROOT / "roles" / "backup" / "tasks" / "main.yml"
FILTERS = load_filters()


def task(name: str) -> dict[str, Any]:
    for entry in yaml.safe_load(TASKS.read_text(encoding="utf-8")):
        if entry.get("name") == name:
            return entry
    raise AssertionError(f"no task {name!r} in {TASKS}")


def keypair(directory: Path, name: str) -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"hopthu-backup@{name}",
                    "-f", str(directory / name)], check=True)
    return (directory / f"{name}.pub").read_text().strip()


def lab(host: str, keys_dir: Path | None = None, **extra: Any) -> dict[str, Any]:
    values = load_host("lab", host).template_vars()
    if keys_dir is not None:
        values["backup__keys_dir"] = str(keys_dir)
    values.update(extra)
    return values


# --- Both engines, the same steps ---------------------------------------------------------


@pytest.mark.parametrize(("name", "script"), [
    ("Generate the backup SSH key on the store host", deploy.KEYGEN_SCRIPT),
    ("Record when backups were enabled on the store host", deploy.ENABLED_SINCE_SCRIPT),
])
def test_the_host_scripts_are_the_same_in_both_engines(name: str, script: str) -> None:
    argv = task(name)["ansible.builtin.command"]["argv"]
    assert argv[:2] == ["sh", "-c"]
    assert argv[2] == script, f"{name}: the role's script and hopthu/deploys/backup.py differ"
    assert not re.search(r"\{[{%#]", script), f"{name}: the script holds a Jinja2 delimiter"


def test_the_scripts_make_only_what_their_creates_names() -> None:
    keygen = task("Generate the backup SSH key on the store host")["ansible.builtin.command"]
    assert keygen["creates"] == f"{deploy.CLIENT_KEY}.pub"
    assert deploy.KEYGEN_SCRIPT.rstrip().endswith('"$key.pub"'), "the public half moves last"
    since = task("Record when backups were enabled on the store host")["ansible.builtin.command"]
    assert since["creates"] == deploy.ENABLED_SINCE
    assert f"file={deploy.ENABLED_SINCE}\n" in deploy.ENABLED_SINCE_SCRIPT


def test_the_keygen_script_makes_a_key_the_filters_accept(tmp_path: Path) -> None:
    script = deploy.KEYGEN_SCRIPT.replace("/etc/hopthu/backup", str(tmp_path))
    subprocess.run(["sh", "-c", script, "backup-keygen", "mail1"], check=True)
    assert oct((tmp_path / "id_ed25519").stat().st_mode & 0o777) == "0o600"
    line = (tmp_path / "id_ed25519.pub").read_text()
    (tmp_path / "mail1.client.pub").write_text(line)
    assert FILTERS["backup_client_keys"](str(tmp_path), ["mail1"]) == {"mail1": line.strip()}
    assert line.strip().endswith("hopthu-backup@mail1")


def test_the_controller_copies_are_named_as_the_filters_read_them() -> None:
    client = task("Copy the backup SSH public key to the controller")["ansible.builtin.fetch"]
    server = task("Copy the backup host's SSH host key to the controller")["ansible.builtin.fetch"]
    assert client["dest"] == "{{ backup__keys_dir }}/{{ backup__host_name }}.client.pub"
    assert server["dest"] == "{{ backup__keys_dir }}/{{ backup__host_name }}.host.pub"
    assert str(deploy.client_copy("/k", "mail1")) == "/k/mail1.client.pub"
    assert str(deploy.host_copy("/k", "backup1")) == "/k/backup1.host.pub"
    assert server["src"] == deploy.HOST_KEY


# --- The backup host's authorized_keys: append-only, one repository per key ---------------


@pytest.mark.control("ART11-7-BACKUP")
def test_every_store_key_is_forced_to_an_append_only_serve_of_its_own_repository(
    tmp_path: Path,
) -> None:
    lines = {name: keypair(tmp_path, name) for name in ("mail1", "mail2")}
    for name, line in lines.items():
        (tmp_path / f"{name}.client.pub").write_text(line + "\n")
    text = render("srv/borg/.ssh/authorized_keys.j2", lab("backup1", tmp_path))
    keys = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert keys == [
        f'restrict,command="borg serve --append-only --restrict-to-repository /srv/borg/{name}"'
        f" {lines[name]}" for name in ("mail1", "mail2")]


def test_a_store_without_a_key_yet_is_named_and_gets_no_line(tmp_path: Path) -> None:
    (tmp_path / "mail1.client.pub").write_text(keypair(tmp_path, "mail1") + "\n")
    text = render("srv/borg/.ssh/authorized_keys.j2", lab("backup1", tmp_path))
    assert "# mail2: no backup key on the controller yet" in text
    assert sum(1 for line in text.splitlines() if line.startswith("restrict,")) == 1


def test_a_repository_quota_reaches_the_forced_command(tmp_path: Path) -> None:
    (tmp_path / "mail1.client.pub").write_text(keypair(tmp_path, "mail1") + "\n")
    text = render("srv/borg/.ssh/authorized_keys.j2",
                  lab("backup1", tmp_path, backup__repository_quota="500G"))
    assert "--restrict-to-repository /srv/borg/mail1 --storage-quota 500G\" ssh-ed25519" in text


@pytest.mark.parametrize(("content", "message"), [
    ("ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ hopthu\n", "not an OpenSSH public key of type"),
    ("ssh-ed25519 not*base64\n", "not base64"),
    ("ssh-ed25519 AAAA\nssh-ed25519 AAAA\n", "expected one public key line, found 2"),
    ('ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPl8 a"b\n', "comment"),
])
def test_a_key_file_that_is_not_one_ed25519_key_stops_the_render(
    tmp_path: Path, content: str, message: str,
) -> None:
    (tmp_path / "mail1.client.pub").write_text(content)
    with pytest.raises(ValueError, match=message) as caught:
        FILTERS["backup_client_keys"](str(tmp_path), ["mail1"])
    assert "mail1.client.pub" in str(caught.value)


# --- The stores: the pinned host key, what the tool does ---------------------------------


def test_the_stores_pin_the_backup_hosts_key(tmp_path: Path) -> None:
    line = keypair(tmp_path, "backup1")
    (tmp_path / "backup1.host.pub").write_text(line + "\n")
    text = render("etc/hopthu/backup/known_hosts.j2", lab("mail1", tmp_path))
    assert f"\n198.18.0.20 {line}\n" in text
    moved = render("etc/hopthu/backup/known_hosts.j2",
                   lab("mail1", tmp_path, backup__server_port=2222))
    assert f"\n[198.18.0.20]:2222 {line}\n" in moved


def test_without_the_backup_hosts_key_the_stores_pin_nothing(tmp_path: Path) -> None:
    text = render("etc/hopthu/backup/known_hosts.j2", lab("mail1", tmp_path))
    assert [line for line in text.splitlines() if not line.startswith("#")] == []
    assert "deploy backup1, then this host" in text


def settings_json(text: str) -> dict[str, Any]:
    return json.loads("".join(line for line in text.splitlines(keepends=True)
                              if not line.lstrip().startswith("#")))


def test_the_tool_settings_of_a_store_and_of_the_backup_host() -> None:
    store = settings_json(render("etc/hopthu/backup/backup.conf.j2", lab("mail1")))
    assert store["host"] == "mail1" and store["server"] is None
    assert store["client"]["repository"] == "ssh://borg@198.18.0.20:22/srv/borg/mail1"
    assert "/var/lib/rspamd/dkim" in store["client"]["paths"]
    assert "/var/log/hopthu/accounts.log" in store["client"]["paths"]
    assert store["client"]["metrics_textfile"] == \
        "/var/lib/prometheus/node-exporter/hopthu_backup.prom"
    keeper = settings_json(render("etc/hopthu/backup/backup.conf.j2", lab("backup1")))
    assert keeper["client"] is None
    assert keeper["server"] == {"clients": ["mail1", "mail2"],
                                "keep": {"daily": 14, "weekly": 8, "monthly": 12}}


def test_an_ipv6_backup_host_is_bracketed_in_the_repository_url() -> None:
    store = settings_json(render("etc/hopthu/backup/backup.conf.j2",
                                 lab("mail1", backup__server_address="2001:db8::20")))
    assert store["client"]["repository"] == "ssh://borg@[2001:db8::20]:22/srv/borg/mail1"


def test_the_units_run_the_tool_on_the_configured_schedules() -> None:
    store = next(s for s in load_inventory("production").values()
                 if s.values.get("backup__client_enabled"))
    timer = render("etc/systemd/system/hopthu-backup.timer.j2", store.template_vars())
    assert "OnCalendar=*-*-* 01:00:00\n" in timer and "Persistent=true\n" in timer
    assert "RandomizedDelaySec=1800\n" in timer
    service = render("etc/systemd/system/hopthu-backup.service.j2", lab("mail1"))
    assert "ExecStart=/usr/local/sbin/hopthu-backup create\n" in service
    prune = render("etc/systemd/system/hopthu-backup-prune.service.j2", lab("backup1"))
    assert "User=borg\n" in prune and "ExecStart=/usr/local/sbin/hopthu-backup prune\n" in prune
    drill = render("etc/systemd/system/hopthu-backup-drill.service.j2", lab("backup1"))
    assert "ExecStart=/usr/local/sbin/hopthu-backup drill --all\n" in drill


# --- Which hosts, in every inventory ---------------------------------------------------------


@pytest.mark.parametrize("inventory", ["lab", "staging", "production"])
def test_every_store_backs_up_to_a_backup_host_that_keeps_its_repository(inventory: str) -> None:
    hosts = load_inventory(inventory)
    stores = [h for h, s in hosts.items() if s.values.get("backup__client_enabled")]
    keepers = [h for h, s in hosts.items() if s.values.get("backup__server_enabled")]
    assert stores and len(keepers) == 1
    keeper = hosts[keepers[0]].values
    assert sorted(keeper["backup__clients"]) == sorted(stores)
    for store in stores:
        values = hosts[store].values
        assert "backup" in hosts[store].roles
        assert values["backup__server_host"] == keepers[0]
        assert values["backup__server_address"] == str(
            hosts[keepers[0]].values.get("ansible_host")), \
            f"{inventory}/{store}: backup__server_address is not the backup host's address"
    allowed = keeper.get("common__sshd_allow_users") or []
    assert not allowed or "borg" in allowed, \
        f"{inventory}: sshd on the backup host lets only {allowed} log in, not the stores' borg"


SCHEDULES = ("backup__schedule", "backup__prune_schedule", "backup__drill_schedule")


def role_defaults() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "roles" / "backup" / "defaults" / "main.yml").read_text(
        encoding="utf-8"))


@pytest.mark.parametrize("inventory", ["staging", "production"])
def test_real_environments_back_up_prune_and_drill_on_the_role_defaults(inventory: str) -> None:
    defaults = role_defaults()
    for host, settings in load_inventory(inventory).items():
        if "backup" in settings.roles:
            for key in (*SCHEDULES, "backup__randomized_delay_sec"):
                assert settings.values[key] == defaults[key], (
                    f"{inventory}/{host}: {key} is {settings.values[key]!r}, not the role's "
                    f"{defaults[key]!r}")


@pytest.mark.parametrize("host", ["mail1", "mail2", "backup1"])
def test_no_lab_timer_fires_during_a_lab_test_run(host: str) -> None:
    # The lab tests back up, prune and drill themselves; a timer firing among
    # them could fail the infra check (inventories/lab/group_vars/all.yml).
    values = lab(host)
    timers = {"backup__schedule": "hopthu-backup.timer.j2",
              "backup__prune_schedule": "hopthu-backup-prune.timer.j2",
              "backup__drill_schedule": "hopthu-backup-drill.timer.j2"}
    for key, template in timers.items():
        assert values[key].startswith("2100-01-01 "), f"lab {host}: {key} = {values[key]!r}"
        rendered = render(f"etc/systemd/system/{template}", values)
        assert f"OnCalendar={values[key]}\n" in rendered
    if shutil.which("systemd-analyze"):
        shown = subprocess.run(["systemd-analyze", "calendar", values["backup__schedule"]],
                               capture_output=True, text=True, check=False)
        assert shown.returncode == 0 and "left" in shown.stdout, shown.stdout + shown.stderr
        years = re.search(r"From now: (\d+) years", shown.stdout)
        assert years and int(years.group(1)) >= 50, shown.stdout


def test_the_lab_generates_its_passphrase_and_no_other_environment_does() -> None:
    for inventory, generate in (("lab", True), ("staging", False), ("production", False)):
        values = next(s.values for s in load_inventory(inventory).values() if "backup" in s.roles)
        assert values["backup__passphrase_generate"] is generate
        assert values["backup__passphrase_file"] == str(
            ROOT / "secrets" / inventory / "backup-passphrase")
    assert "/secrets/" in (ROOT / ".gitignore").read_text().splitlines()


# --- The passphrase on the controller ------------------------------------------------------------


def test_the_lab_passphrase_is_made_once_and_kept_private(tmp_path: Path) -> None:
    file = tmp_path / "secrets" / "lab" / "backup-passphrase"
    assert passphrase.ensure(file, generate=True) is True
    first = file.read_bytes()
    assert passphrase.ensure(file, generate=True) is False
    assert file.read_bytes() == first and len(first.strip()) == passphrase.LENGTH
    assert file.stat().st_mode & 0o777 == 0o600
    assert file.parent.stat().st_mode & 0o777 == 0o700


def test_a_missing_passphrase_stops_the_deploy_with_what_to_do(tmp_path: Path) -> None:
    file = tmp_path / "backup-passphrase"
    with pytest.raises(passphrase.PassphraseError, match="does not exist") as caught:
        passphrase.ensure(file, generate=False)
    assert "ansible-vault encrypt" in str(caught.value) and "keep a copy" in str(caught.value)
    assert not file.exists()


def test_a_passphrase_others_can_read_is_refused(tmp_path: Path) -> None:
    file = tmp_path / "backup-passphrase"
    file.write_text("a-passphrase-long-enough-for-borg\n")
    file.chmod(0o644)
    with pytest.raises(passphrase.PassphraseError, match="readable by others"):
        passphrase.read(file)


def test_a_vault_encrypted_passphrase_is_decrypted_with_the_vault_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from ansible.parsing.vault import VaultLib, VaultSecret

    vault_password = tmp_path / "vault-password"
    vault_password.write_text("vault secret\n")
    file = tmp_path / "backup-passphrase"
    plain = b"a-passphrase-long-enough-for-borg\n"
    file.write_bytes(VaultLib([("default", VaultSecret(b"vault secret"))]).encrypt(plain))
    file.chmod(0o644)  # encrypted: its mode does not matter
    monkeypatch.setenv("ANSIBLE_VAULT_PASSWORD_FILE", str(vault_password))
    assert passphrase.read(file) == plain
    monkeypatch.delenv("ANSIBLE_VAULT_PASSWORD_FILE")
    with pytest.raises(passphrase.PassphraseError, match="ANSIBLE_VAULT_PASSWORD_FILE"):
        passphrase.read(file)


def test_the_passphrase_command_prints_json_for_the_role(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    file = tmp_path / "p"
    assert passphrase.main(["ensure", "--file", str(file), "--generate"]) == 0
    assert json.loads(capsys.readouterr().out) == {"changed": True, "file": str(file)}
    assert passphrase.main(["ensure", "--file", str(tmp_path / "none")]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert os.path.exists(file)
