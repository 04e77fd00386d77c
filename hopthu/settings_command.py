"""`hopthu settings`: check, show and document the settings of an inventory.

    hopthu settings check [--inventory ENV]         every host; exit 2 on any problem
    hopthu settings show --inventory ENV --host H [KEY] [--origins]
    hopthu settings argspecs [--check]              roles/*/meta/argument_specs.yml

ENV is an environment name (lab, staging, production), an inventory
directory or a hosts.yml; site.yml's first play passes `{{ inventory_dir }}`.
Without --inventory, `check` checks every inventory under inventories/.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from pathlib import Path
from typing import Any

import yaml

from hopthu import ROOT

#: Exit status when settings are invalid or out of sync.
INVALID = 2
OUT_OF_SYNC = 1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", type=Path, default=ROOT, help=argparse.SUPPRESS)
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    check = actions.add_parser(
        "check", help="load and check the settings of every host; exit 2 on any problem"
    )
    check.add_argument("--inventory", "-i", metavar="ENV",
                       help="environment name, inventory directory or hosts.yml "
                            "(default: every inventory under inventories/)")

    show = actions.add_parser("show", help="print a host's resolved settings as YAML")
    show.add_argument("--inventory", "-i", metavar="ENV", required=True,
                      help="environment name, inventory directory or hosts.yml")
    show.add_argument("--host", required=True, help="the inventory host name")
    show.add_argument("key", nargs="?", help="one variable only")
    show.add_argument("--origins", action="store_true",
                      help="say above each key which file and layer set it")

    argspecs = actions.add_parser(
        "argspecs", help="write roles/*/meta/argument_specs.yml from the schema"
    )
    argspecs.add_argument("--check", action="store_true",
                          help="write nothing; exit 1 if a file is out of date")


def run(args: argparse.Namespace) -> int:
    root = Path(args.root).resolve()
    if args.action == "check":
        return _check(args.inventory, root)
    if args.action == "show":
        return _show(args.inventory, args.host, args.key, args.origins, root)
    return _argspecs(args.check, root)


def _check(inventory: str | None, root: Path) -> int:
    from hopthu.settings import SettingsError, load_inventory

    if inventory is None:
        names = sorted(p.parent.name for p in (root / "inventories").glob("*/hosts.yml"))
    else:
        names = [inventory]
    status = 0
    for name in names:
        try:
            hosts = load_inventory(name, root=root)
        except SettingsError as exc:
            print(exc, file=sys.stderr)
            status = INVALID
            continue
        label = f" ({name})" if inventory is None else ""
        print(f"settings OK: {len(hosts)} hosts{label}")
    return status


def _show(inventory: str, host: str, key: str | None, origins: bool, root: Path) -> int:
    from hopthu.settings import SettingsError, load_host

    try:
        settings = load_host(inventory, host, root=root)
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        return INVALID
    keys = sorted(settings.values) if key is None else [key]
    if key is not None and key not in settings.values and key not in settings.context:
        guess = difflib.get_close_matches(key, [*settings.values, *settings.context], n=1)
        hint = f"; did you mean {guess[0]}?" if guess else ""
        print(f"hopthu settings show: {host} has no variable {key!r}{hint}", file=sys.stderr)
        return INVALID
    for name in keys:
        value = settings.values[name] if name in settings.values else settings.context[name]
        if origins:
            origin = settings.origins.get(name)
            print(f"# {origin if origin else 'set by Ansible for every host'}")
        print(_yaml({name: value}), end="")
    return 0


def _yaml(data: Any) -> str:
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False, default_flow_style=False)


def argspec_texts(root: Path = ROOT) -> dict[Path, str]:
    """Each role's argument_specs.yml path and the text it must have."""
    from hopthu.schema import REGISTRY
    from hopthu.schema.argspecs import render
    from hopthu.settings.files import find_vars_files, read_vars_file

    texts: dict[Path, str] = {}
    for namespace, model in sorted(REGISTRY.items()):
        role_dir = root / "roles" / namespace
        if not model.is_role or not role_dir.is_dir():
            continue
        defaults: dict[str, Any] = {}
        for file in find_vars_files(role_dir / "defaults", "main"):
            defaults.update(read_vars_file(file).data)
        texts[role_dir / "meta" / "argument_specs.yml"] = render(model, defaults)
    return texts


def _argspecs(check: bool, root: Path) -> int:
    stale = []
    for path, text in argspec_texts(root).items():
        shown = path.relative_to(root)
        current = path.read_text(encoding="utf-8") if path.is_file() else None
        if current == text:
            print(f"up to date: {shown}")
            continue
        if check:
            stale.append(shown)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(f"wrote {shown}")
    if stale:
        print("out of date (run `hopthu settings argspecs`): "
              + ", ".join(str(p) for p in stale), file=sys.stderr)
        return OUT_OF_SYNC
    return 0
