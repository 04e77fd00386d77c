"""The userdb deploy: the user database that Postfix and Dovecot both read.

Where it sits. Every message and every login asks it something: Postfix
whether a domain is the ministry's, whether a recipient exists, where an
alias goes and which login may use a sender address; Dovecot whether a
password is right, whether the account may log in yet (Art. 14), and the
mailbox's quota. The accounts registry (a later issue) writes it; until then
the lab seeds test accounts.

What it owns. /var/lib/hopthu/userdb/users.sqlite (0640 root:userdb__reader_group: it
holds the password hashes) and its copy for Postfix, postfix.sqlite (0644: no
secret), both created and kept by /usr/local/sbin/hopthu-userdb from
/etc/hopthu/userdb/schema.sql and /etc/hopthu/userdb/userdb.conf.
roles/userdb/README.md documents the schema.

How a change is checked. The tool is syntax-checked before it is written. It
migrates the schema in one transaction, writes a row only when a field
differs, hashes a password only when the stored hash does not verify it,
refreshes Postfix's copy only when its rows differ, and says what it
changed. Here its ``--check`` run, a fact read while pyinfra prepares the
operations, decides whether the apply step runs at all, so a second deploy
shows no change; the role takes the same answer from the real run.

roles/userdb/ does the same steps, in the same order, under the same names
(tests/unit/test_engine_shape.py checks it).
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from pyinfra import host
from pyinfra.api import FactBase, StringCommand, operation
from pyinfra.operations import apt, files

from hopthu.accounts.registry import operator, registry_commit
from hopthu.deploys import put_template
from hopthu.deploys.mailhost import host_settings

TOOL = "/usr/local/sbin/hopthu-userdb"
#: host name -> the "Apply the user database settings" step of this deploy:
#: the dovecot deploy runs hopthu-unit-acl after it whenever it changes the
#: database (its own --check, read beforehand, could not see that change).
APPLIED: dict[str, Any] = {}
CONFIG = "/etc/hopthu/userdb/userdb.conf"


class UserdbPending(FactBase):
    """Whether `hopthu-userdb apply CONFIG --check` would change anything.

    True when the tool or its configuration is missing, or the check fails:
    the real run then says why.
    """

    def command(self, tool: str, config: str) -> str:
        return (
            f"if [ -x {tool} ] && [ -f {config} ]; then {tool} apply {config} --check "
            f"2>&1 | tail -n 1; else echo missing; fi"
        )

    def process(self, output: list[str]) -> bool:
        return not output or output[-1].strip() != "hopthu-userdb: unchanged"


@operation(is_idempotent=False)
def apply_userdb(tool: str, config: str, force: bool = False, commit: str = "",
                 operator: str = ""):
    """Run `hopthu-userdb apply` when it would change something, or when forced.

    + tool: the hopthu-userdb path
    + config: its configuration file
    + force: run even if the check says nothing is pending (its input changes
      in this same deploy, which the check, run beforehand, cannot see)
    + commit, operator: the registry's commit and who deploys, for the audit log
    """
    if force or host.get_fact(UserdbPending, tool=tool, config=config):
        yield StringCommand(tool, "apply", config, "--commit", shlex.quote(commit),
                            "--operator", shlex.quote(operator))


def apply() -> None:
    """Converge the current host (deploy.py calls it for every mail host)."""
    values = host_settings()

    apt.packages(
        name="Install the user database packages",
        packages=[*values["userdb__packages"],
                  *(["dovecot-core"] if values["userdb__passwords_enabled"] else [])],
        present=True,
    )
    files.directory(
        name="Create the user database directory",
        path="/var/lib/hopthu/userdb",
        present=True,
        user="root",
        group="root",
        mode="0755",
    )
    files.directory(
        name="Create the user database settings directory",
        path="/etc/hopthu/userdb",
        present=True,
        user="root",
        group="root",
        mode="0755",
    )
    schema = put_template(
        name="Render the user database schema",
        template="etc/hopthu/userdb/schema.sql.j2",
        dest="/etc/hopthu/userdb/schema.sql",
        user="root",
        group="root",
        mode="0644",
        variables=values,
    )
    tool = put_template(
        name="Render the user database tool",
        template="usr/local/sbin/hopthu-userdb.j2",
        dest="/usr/local/sbin/hopthu-userdb",
        user="root",
        group="root",
        mode="0755",
        validate='python3 -I -c "import ast, sys; ast.parse(open(sys.argv[1]).read())" %s',
        variables=values,
    )
    # In the lab the file carries the seed accounts' passwords (lab data,
    # kept in the lab inventory); production seeds none.
    config = put_template(
        name="Render the user database settings",
        template="etc/hopthu/userdb/userdb.conf.j2",
        dest="/etc/hopthu/userdb/userdb.conf",
        user="root",
        group="root",
        mode="0600",
        variables=values,
    )
    APPLIED[host.name] = apply_userdb(
        name="Apply the user database settings",
        tool=TOOL,
        config=CONFIG,
        force=bool(schema.will_change or tool.will_change or config.will_change),
        commit=registry_commit(Path(values["userdb__registry_file"]).parent),
        operator=operator(),
    )
