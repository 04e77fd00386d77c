"""Find and read variable files the way Ansible does.

`find_vars_files` is Ansible's DataLoader.find_vars_files: for `group_vars`
and `all`, the first of `all` (a directory, read recursively in sorted
order), `all.yml`, `all.yaml`, `all.json` wins. The YAML is read as Ansible
reads it (YAML 1.1, `!unsafe`, `!vault`), but more strictly: a key that
appears twice is an error instead of a warning, since the second silently
wins.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

#: Ansible's default YAML_FILENAME_EXTENSIONS, after the bare name.
EXTENSIONS = ("", ".yml", ".yaml", ".json")


class VarsFileError(Exception):
    """A variable file that cannot be used; `line` is 1-based when known."""

    def __init__(self, path: Path, message: str, line: int | None = None, key: str = ""):
        super().__init__(message)
        self.path = path
        self.message = message
        self.line = line
        self.key = key


class Unsafe(str):
    """A string marked `!unsafe`: used as it is, never templated."""

    __slots__ = ()


class Vaulted(str):
    """An inline `!vault` value: the ciphertext, decrypted only when used."""

    __slots__ = ()


@dataclass(frozen=True)
class VarsFile:
    path: Path
    data: dict[str, Any]
    #: top-level key -> the 1-based line where it is set
    lines: dict[str, int]


def find_vars_files(directory: Path, name: str) -> list[Path]:
    """The files Ansible reads for `name` in `directory` (group_vars, host_vars, defaults)."""
    base = directory / name
    for ext in EXTENSIONS:
        candidate = Path(f"{base}{ext}")
        if candidate.is_dir():
            return _dir_files(candidate)
        if candidate.exists():
            return [candidate]
    return []


def _dir_files(directory: Path) -> list[Path]:
    found: list[Path] = []
    for entry in sorted(os.listdir(directory)):
        if entry.startswith(".") or entry.endswith("~"):
            continue
        path = directory / entry
        ext = os.path.splitext(entry)[1]
        if path.is_dir() and not ext:
            found.extend(_dir_files(path))
        elif path.is_file() and (not ext or ext in EXTENSIONS):
            found.append(path)
    return found


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader with Ansible's tags and an error on duplicate keys."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                first = seen.setdefault(key, line)
            except TypeError:
                continue  # an unhashable key: PyYAML reports it below
            if first != line:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"the key {key!r} is set twice (lines {first} and {line}); "
                    f"Ansible would silently use the second",
                    key_node.start_mark,
                )
        return super().construct_mapping(node, deep=deep)


def _unsafe(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return Unsafe(loader.construct_scalar(node))
    raise yaml.constructor.ConstructorError(
        None, None, "!unsafe is supported on strings only", node.start_mark
    )


def _vault(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    return Vaulted(loader.construct_scalar(node))  # type: ignore[arg-type]


_Loader.add_constructor("!unsafe", _unsafe)
_Loader.add_constructor("!vault", _vault)


def _parse(path: Path, text: str) -> tuple[Any, dict[str, int]]:
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        column = f", column {mark.column + 1}" if mark is not None else ""
        raise VarsFileError(path, f"is not valid YAML (line {line}{column}): {problem}", line)
    finally:
        loader.dispose()
    lines: dict[str, int] = {}
    if isinstance(node, yaml.MappingNode):
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                lines.setdefault(key_node.value, key_node.start_mark.line + 1)
    return data, lines


class VaultError(Exception):
    """Vault-encrypted text that cannot be decrypted here."""


def decrypt(ciphertext: str) -> str:
    """Decrypt ansible-vault text with the password file in ANSIBLE_VAULT_PASSWORD_FILE."""
    password_file = os.environ.get("ANSIBLE_VAULT_PASSWORD_FILE")
    if not password_file:
        raise VaultError(
            "is encrypted with ansible-vault, and no password is available: "
            "set ANSIBLE_VAULT_PASSWORD_FILE to the vault password file"
        )
    from ansible.parsing.vault import VaultLib, VaultSecret

    secret = VaultSecret(Path(password_file).expanduser().read_bytes().strip())
    try:
        return VaultLib([("default", secret)]).decrypt(ciphertext.encode()).decode("utf-8")
    except Exception as exc:  # noqa: BLE001 - any vault failure is reported the same way
        raise VaultError(f"cannot be decrypted with the vault password: {exc}") from None


@lru_cache(maxsize=512)
def _read_cached(path: Path, _mtime: int, _size: int) -> VarsFile:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise VarsFileError(path, f"is not UTF-8 ({exc})") from None
    if text.startswith("$ANSIBLE_VAULT;"):
        try:
            text = decrypt(text)
        except VaultError as exc:
            raise VarsFileError(path, str(exc)) from None
    data, lines = _parse(path, text)
    if data is None:
        return VarsFile(path, {}, {})
    if not isinstance(data, dict):
        raise VarsFileError(
            path,
            f"holds {_kind(data)}, but a variable file must be a mapping of variable names "
            f"to values (name: value)",
            1,
        )
    for key in data:
        if not isinstance(key, str) or not key.isidentifier():
            raise VarsFileError(
                path,
                f"has the key {key!r}, which is not a variable name "
                f"(letters, digits and '_', not starting with a digit)",
                lines.get(str(key)),
            )
    return VarsFile(path, data, lines)


def read_vars_file(path: Path) -> VarsFile:
    """Read one variable file: a mapping of variable names to values."""
    stat = path.stat()
    return _read_cached(path, stat.st_mtime_ns, stat.st_size)


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    return f"a {type(value).__name__}"
