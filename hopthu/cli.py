"""The `hopthu` command line.

Each subcommand lives in its own module, which exposes two functions:
``add_arguments(parser)`` and ``run(args) -> int``. They are imported only
when used, so `hopthu lab status` does not pay for loading Ansible.
"""

from __future__ import annotations

import argparse
import importlib
import sys

#: subcommand -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "lab": ("hopthu.lab.command", "build, inspect and remove the lab of Debian hosts"),
    "settings": ("hopthu.settings_command", "load, check and show the settings of an inventory"),
    "deploy": ("hopthu.engines", "deploy an inventory with Ansible or pyinfra"),
    "verify": ("hopthu.verify", "run the infra suite (tests/infra) against an inventory"),
    "status": ("hopthu.status",
               "check every host of an inventory and say what to do about each failure"),
    "audit": ("hopthu.audit.command",
              "write the auditor's report: decree articles, controls, code and test evidence"),
    "pki": ("hopthu.pki_command", "prepare the mail hosts' TLS certificates on the controller"),
    "dns": ("hopthu.dns", "print the DNS records to publish for the ministry's mail domain"),
    "accounts": ("hopthu.accounts.command",
                 "check, plan and apply the accounts registry; reset a password"),
    "directory": ("hopthu.accounts.directory_command",
                  "build the e-mail directory (HTML, CSV, vCard, LDIF) from the registry"),
    "backup": ("hopthu.backup.command",
               "back up the stores now, list archives, drill a restore, restore a mailbox"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hopthu",
        description="Build, deploy and verify the Ministry of Justice mail system.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(module_name)
        sub_parser = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(sub_parser)
        sub_parser.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print("hopthu: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
