"""`hopthu directory build`: the ministry's e-mail directory (danh bạ, Art. 5).

    hopthu directory build --inventory production [--out DIR] [--generated TEXT]

Built from the inventory's accounts registry (the same checked registry the
deploy applies): its active mailboxes and aliases, grouped by unit in
Vietnamese order, as index.html (searchable without a server), directory.csv,
directory.vcf (vCard 4.0) and directory.ldif (hopthu/accounts/directory.py).
The output depends only on the registry and --generated (default: the
registry's git commit), so two builds of one commit are byte-identical.

Exit status: 0, or 2 when the settings or the registry are invalid.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hopthu import ROOT


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    build = actions.add_parser("build", help="write the directory in HTML, CSV, vCard and LDIF")
    build.add_argument("--inventory", "-i", default="lab", help="environment name or hosts.yml")
    build.add_argument("--out", type=Path, help="default: build/directory/<env>/")
    build.add_argument("--generated", help="the footer's stamp (default: the registry's commit)")


def run(args: argparse.Namespace) -> int:
    from hopthu.accounts.directory import build
    from hopthu.accounts.registry import RegistryError, load, registry_commit
    from hopthu.settings import SettingsError, load_inventory

    try:
        hosts = load_inventory(args.inventory, root=ROOT)
        inventory_dir = Path(next(iter(hosts.values())).context["inventory_dir"])
        entries = load(inventory_dir)
    except (SettingsError, RegistryError) as exc:
        print(exc, file=sys.stderr)
        return 2
    if not entries:
        print(f"hopthu directory: {inventory_dir}/accounts.yml has no entries", file=sys.stderr)
        return 2
    out = args.out or ROOT / "build" / "directory" / inventory_dir.name
    generated = args.generated or f"registry {registry_commit(inventory_dir)}"
    paths = build(entries, out, generated=generated)
    active = sum(1 for e in entries if e["state"] == "active")
    print(f"directory: {active} active entries of {len(entries)}")
    for fmt, path in paths.items():
        print(f"  {fmt:5} {path}")
    return 0
