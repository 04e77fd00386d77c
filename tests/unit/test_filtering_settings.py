"""The filtering roles' settings: values that only go wrong together stop the run.

Each case makes one mistake in a small project tree (conftest.py's `project`,
plus the mail and filtering roles' defaults, the ministry's MX policy and a
site.yml with their plays) and checks that the report names the key, what
is wrong and what to write instead. Values wrong on their own are in
test_settings_errors.py.
"""

from __future__ import annotations

import shutil
from typing import Any

import pytest

from hopthu import ROOT
from hopthu.settings import SettingsError, load_inventory

ENV = "inventories/t/group_vars/all.yml"
ROLES = ("pki", "userdb", "redis", "rspamd", "postfix", "dovecot")

SITE = """
- hosts: all
  roles: [common]
- hosts: mail_mx:mail_store
  roles: [pki, userdb]
- hosts: mail_mx
  roles: [redis, rspamd]
- hosts: mail_mx
  roles: [postfix]
- hosts: mail_store
  roles: [dovecot]
"""


@pytest.fixture
def filtering_project(project: Any) -> Any:
    for role in ROLES:
        target = project.root / "roles" / role / "defaults"
        target.mkdir(parents=True)
        shutil.copy(ROOT / "roles" / role / "defaults" / "main.yml", target / "main.yml")
    shutil.copy(ROOT / "group_vars" / "mail_mx.yml", project.root / "group_vars" / "mail_mx.yml")
    project.write("site.yml", SITE)
    return project


def issue_for(project: Any, key: str) -> Any:
    with pytest.raises(SettingsError) as caught:
        load_inventory(project.inventory, root=project.root)
    found = [i for i in caught.value.errors if i.key.split(".")[0].split("[")[0] == key]
    assert found, f"no problem reported for {key}:\n{caught.value}"
    return found[0]


def test_the_mx_policy_hands_postfix_rspamds_milter(filtering_project: Any) -> None:
    values = load_inventory(filtering_project.inventory, root=filtering_project.root)["mx1"]
    assert values["postfix__smtpd_milters"] == [f"inet:{values['rspamd__milter_bind']}"]
    assert values["rspamd__dkim_selector"] == "mx1"
    assert values["rspamd__dkim_domains"] == ["moj.gov.vn"]


def test_the_actions_must_rise_from_greylist_to_reject(filtering_project: Any) -> None:
    filtering_project.write(ENV, "rspamd__action_add_header: 20\n")
    issue = issue_for(filtering_project, "rspamd__action_add_header")
    assert "does not lie between rspamd__action_greylist = 4 and rspamd__action_reject = 15" \
        in issue.message
    assert "rspamd__action_greylist < rspamd__action_add_header" in issue.allowed


def test_a_virus_scan_with_its_retry_must_fit_in_the_task_timeout(
    filtering_project: Any,
) -> None:
    filtering_project.write(ENV, "rspamd__antivirus_timeout: 40\n")
    issue = issue_for(filtering_project, "rspamd__antivirus_timeout")
    assert "does not fit in rspamd__task_timeout = 60" in issue.message
    assert "at most 30" in issue.allowed


def test_the_task_timeout_stays_below_the_milters(filtering_project: Any) -> None:
    filtering_project.write(ENV, "rspamd__task_timeout: 150\nrspamd__antivirus_timeout: 20\n")
    issue = issue_for(filtering_project, "rspamd__task_timeout")
    assert "milter proxy's timeout of 120 s" in issue.message


def test_rspamd_must_scan_every_message_postfix_accepts(filtering_project: Any) -> None:
    filtering_project.write(ENV, "rspamd__max_message_size: 52428800\n")
    issue = issue_for(filtering_project, "rspamd__max_message_size")
    assert "postfix__message_size_limit = 52428800" in issue.message
    assert "at least 53477376" in issue.allowed


def test_the_mail_domain_must_be_signed(filtering_project: Any) -> None:
    filtering_project.write(ENV, 'rspamd__dkim_domains: ["tuphap.gov.vn"]\n')
    issue = issue_for(filtering_project, "rspamd__dkim_domains")
    assert "lacks the mail domain moj.gov.vn" in issue.message


def test_a_blocked_extension_is_listed_once(filtering_project: Any) -> None:
    filtering_project.write(ENV, 'rspamd__blocked_extensions: ["exe", "js", "exe"]\n')
    issue = issue_for(filtering_project, "rspamd__blocked_extensions")
    assert "lists exe 2 times" in issue.message


def test_rspamd_and_redis_must_agree_on_the_port(filtering_project: Any) -> None:
    filtering_project.write(ENV, "redis__port: 6380\n")
    issue = issue_for(filtering_project, "rspamd__redis_servers")
    assert "redis__port = 6380" in issue.message and "127.0.0.1:6380" in issue.allowed


def test_redis_must_listen_where_rspamd_connects(filtering_project: Any) -> None:
    filtering_project.write(ENV, 'redis__bind: ["::1"]\n')
    issue = issue_for(filtering_project, "redis__bind")
    assert "lacks 127.0.0.1" in issue.message


def test_a_local_milter_needs_rspamd_on_the_host(filtering_project: Any) -> None:
    # The same tree with Rspamd's play gone: Postfix still names the milter.
    filtering_project.write("site.yml", SITE.replace("  roles: [redis, rspamd]\n",
                                                     "  roles: [redis]\n"))
    filtering_project.write(ENV, 'postfix__smtpd_milters: ["inet:localhost:11332"]\n')
    (filtering_project.root / "group_vars" / "mail_mx.yml").unlink()
    issue = issue_for(filtering_project, "postfix__smtpd_milters")
    assert "Rspamd (the rspamd role) does not run here" in issue.message
    assert "451 4.7.1" in issue.message
