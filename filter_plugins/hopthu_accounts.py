"""Filters of the accounts registry (inventories/<env>/accounts.yml).

Shared by both engines, like every filter here: Ansible loads this file as a
filter plugin, hopthu.render imports the same file. The registry is read and
checked by hopthu.accounts.registry, the code `hopthu settings check` runs
before any host is touched; a registry that fails here has already stopped
the run there, so this is only the second line.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any


def accounts_registry(registry_file: str, domains: list[str]) -> list[dict[str, Any]]:
    """The registry `registry_file` (an inventory's accounts.yml), checked and
    normalized (hopthu.accounts.registry.load); [] when there is none."""
    from pathlib import Path

    from hopthu.accounts.registry import RegistryError

    path = Path(registry_file)
    try:
        return _cached(path, frozenset(domains), _stamp(path))
    except RegistryError as exc:
        # Ansible shows a filter's exception message; so does hopthu.render.
        raise ValueError(str(exc)) from None


def _stamp(path: Any) -> tuple[int, int]:
    """What tells one version of the file from another: mtime and size."""
    try:
        info = path.stat()
    except OSError:
        return (0, -1)
    return (info.st_mtime_ns, info.st_size)


@functools.lru_cache(maxsize=8)
def _cached(path: Any, domains: frozenset[str], stamp: tuple[int, int]) -> list[dict[str, Any]]:
    """One check of a registry per process and version of the file: pyinfra
    renders userdb.conf for every host from the same file."""
    from hopthu.accounts.registry import load

    return load(path.parent, domains=set(domains), name=path.name)


@functools.lru_cache(maxsize=4)
def _directory(path: Any, stamp: tuple[int, int]) -> dict[str, str]:
    import hashlib

    from hopthu.accounts.directory import render_all
    from hopthu.accounts.registry import load

    entries = load(path.parent, name=path.name)
    # The footer names the registry's content, not a time: the same registry
    # publishes the same bytes, so a second deploy changes nothing.
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    files = render_all(entries, generated=f"sổ đăng ký {digest}")
    return {name: content.decode("utf-8") for name, content in files.items()}


def accounts_directory(registry_file: str, name: str) -> str:
    """One file of the e-mail directory (Art. 5) built from the registry:
    index.html, directory.csv, directory.vcf or directory.ldif
    (hopthu/accounts/directory.py); "" when there is no registry."""
    from pathlib import Path

    path = Path(registry_file)
    if not path.is_file():
        return ""
    files = _directory(path, _stamp(path))
    if name not in files:
        raise ValueError(f"accounts_directory: {name!r} is not one of {', '.join(files)}")
    return files[name]


def accounts_registry_present(registry_file: str) -> bool:
    """Whether the inventory keeps an accounts registry at all: then the
    registry manages every mailbox, and one that leaves it is archived."""
    from pathlib import Path

    return Path(registry_file).is_file()


def accounts_registry_commit(registry_file: str) -> str:
    """The registry's git commit for the audit log (HEAD, "+changes" if the
    file is not committed); read on the controller by both engines."""
    from pathlib import Path

    from hopthu.accounts.registry import registry_commit

    return registry_commit(Path(registry_file).parent)


def accounts_operator(_value: object = None) -> str:
    """Who deploys, for the audit log: the controller's sudo user or login."""
    from hopthu.accounts.registry import operator

    return operator()


class FilterModule:
    """Ansible's entry point; hopthu.render loads it too."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {
            "accounts_registry": accounts_registry,
            "accounts_registry_present": accounts_registry_present,
            "accounts_registry_commit": accounts_registry_commit,
            "accounts_operator": accounts_operator,
            "accounts_directory": accounts_directory,
        }
