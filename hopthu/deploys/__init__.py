"""pyinfra deploys: one module per Ansible role, with the same steps and names.

``hopthu/deploys/<role>.py`` mirrors ``roles/<role>/`` (DESIGN.md §2, "Same
shape"); ``deploy.py`` at the top calls them in the order ``site.yml`` plays
the roles. This module holds what every deploy needs:

- ``settings()``: the host's resolved settings, which the pyinfra inventory
  (``hopthu.pyinfra_inventory``) loaded and checked with ``hopthu.settings``
  before any host was contacted;
- ``put_template()``: render one template with ``hopthu.render`` (the
  environment that matches Ansible's ``template``) and upload it with
  ``files.put``, or, when the file has a checker, with ``checked_put``;
- ``checked_put``: pyinfra's counterpart of the ``validate:`` argument of
  Ansible's ``template``. The new content goes to a temporary file, the
  daemon's own checker reads it there, and only a file that passes replaces
  the real one. A failed check leaves the live file untouched;
- ``command_creates``: pyinfra's counterpart of Ansible's ``command`` with
  ``creates:``: a command that makes something on the host once (a key, a
  password), run only while that thing does not exist.
"""

from __future__ import annotations

import hashlib
import io
import posixpath
import shlex
from collections.abc import Mapping
from typing import Any

from pyinfra import host, logger, state
from pyinfra.api import FileUploadCommand, OperationValueError, StringCommand, operation
from pyinfra.api.operation import OperationMeta
from pyinfra.facts.files import File, FileContents, Sha1File
from pyinfra.operations import files
from pyinfra.operations.util.files import ensure_mode_int, generate_color_diff

from hopthu.render import render

#: The host data key under which the pyinfra inventory stores a host's
#: resolved settings (``hopthu.settings.Settings.values``).
SETTINGS_KEY = "hopthu_settings"
#: The host data key of the inventory's hosts.yml, to load settings again.
INVENTORY_KEY = "hopthu_inventory"


def settings() -> dict[str, Any]:
    """A copy of the current host's resolved settings (native values).

    A copy, because a deploy sets what it reads from the host (the Debian
    release) the way Ansible's ``set_fact`` does, for this run only.
    """
    values = host.data.get(SETTINGS_KEY)
    if not isinstance(values, Mapping):
        raise OperationValueError(
            f"{host.name}: no hopthu settings in the host data. Run pyinfra with a hopthu "
            f"inventory, e.g. `pyinfra inventories/lab/inventory.py deploy.py`, which loads "
            f"and checks the settings (hopthu/pyinfra_inventory.py)."
        )
    return dict(values)


def reload_settings(extra_vars: Mapping[str, Any]) -> dict[str, Any]:
    """The current host's settings loaded again with `extra_vars` on top (``-e``)."""
    from hopthu.settings import load_host

    return dict(load_host(host.data.get(INVENTORY_KEY), host.name, extra_vars=extra_vars).values)


def put_template(
    *,
    name: str,
    template: str,
    dest: str,
    user: str,
    group: str,
    mode: str,
    variables: Mapping[str, Any],
    validate: str | None = None,
    **op_kwargs: Any,
) -> OperationMeta:
    """Render `template` (a path under templates/) and upload it to `dest`.

    The same arguments as the role's ``ansible.builtin.template`` task, which
    tests/unit/test_engine_shape.py compares: `user`/`group`/`mode` are its
    ``owner``/``group``/``mode``, and `validate` its ``validate`` (a command
    with ``%s`` for the file to check). Returns the operation, for ``_if``.
    """
    text = render(template, variables)
    if validate is None:
        return files.put(
            name=name,
            src=io.StringIO(text),
            dest=dest,
            user=user,
            group=group,
            mode=mode,
            **op_kwargs,
        )
    return checked_put(
        name=name,
        content=text,
        dest=dest,
        user=user,
        group=group,
        mode=mode,
        validate=validate,
        **op_kwargs,
    )


@operation()
def checked_put(content: str, dest: str, user: str, group: str, mode: str, validate: str):
    """Upload `content` to `dest` only if `validate` accepts it.

    + content: the file's text (UTF-8)
    + dest: the remote path
    + user, group, mode: the file's owner, group and octal mode ("0644")
    + validate: a checker command; ``%s`` is replaced by the file to check,
      as in Ansible's ``validate:`` (e.g. ``sshd -t -f %s``)

    Yields nothing when the remote file already has this content, owner and
    mode. Otherwise the content is uploaded to a temporary file beside pyinfra's
    other temporary files, given its owner and mode, checked, and moved over
    `dest`. If the check fails the temporary file is removed and the
    operation fails: `dest` keeps its old content.
    """
    if "%s" not in validate:
        raise OperationValueError(f"validate must contain %s for the file to check: {validate!r}")
    wanted_mode = ensure_mode_int(mode)
    data = content.encode("utf-8")
    remote = host.get_fact(File, path=dest)
    same_content = (
        bool(remote) and host.get_fact(Sha1File, path=dest) == hashlib.sha1(data).hexdigest()
    )

    if not same_content:
        if state.config.DIFF:
            current = host.get_fact(FileContents, path=dest) if remote else None
            current_lines = [line + "\n" for line in current or []]
            host.log(f"Will {'modify' if remote else 'create'} {dest}", logger.info)
            for line in generate_color_diff(current_lines, content.splitlines(keepends=True)):
                logger.info("  %s", line)
            logger.info("")
        temp = host.get_temp_filename(f"hopthu-checked-put:{dest}")
        directory = posixpath.dirname(dest)
        yield StringCommand("mkdir", "-p", directory)
        yield FileUploadCommand(
            io.BytesIO(data), temp, remote_temp_filename=host.get_temp_filename(temp)
        )
        yield StringCommand("chown", f"{user}:{group}", temp)
        yield StringCommand("chmod", str(wanted_mode), temp)
        check = validate.replace("%s", shlex.quote(temp))
        script = (
            f"if {check}; then mv -f {shlex.quote(temp)} {shlex.quote(dest)}; "
            f"else rm -f {shlex.quote(temp)}; "
            f"echo {shlex.quote(f'{dest}: the new file failed `{validate}`; kept the old one')} >&2; "
            f"exit 1; fi"
        )
        yield StringCommand("sh", "-c", shlex.quote(script))
        return

    if remote["mode"] != wanted_mode:
        yield StringCommand("chmod", str(wanted_mode), dest)
    if remote["user"] != user or remote["group"] != group:
        yield StringCommand("chown", f"{user}:{group}", dest)


@operation()
def command_creates(argv: list[str], creates: str):
    """Run `argv` only if the path `creates` does not exist on the host.

    + argv: the command and its arguments, each quoted for the shell (as
      Ansible's ``command`` with ``argv:`` passes them, no shell between)
    + creates: the path the command makes; while it exists, nothing runs

    Ansible's ``command`` with ``creates:``: a second run changes nothing,
    and ``--dry`` shows the command without running it.
    """
    if not argv:
        raise OperationValueError("command_creates: argv is empty")
    # File is None when nothing is there, False for a directory or a socket.
    if host.get_fact(File, path=creates) is not None:
        host.noop(f"{creates} exists")
        return
    yield StringCommand(*(shlex.quote(str(arg)) for arg in argv))


@operation()
def unit_enabled(unit: str):
    """A systemd unit unmasked, enabled and started: Ansible's
    ``systemd_service: {masked: false, enabled: true, state: started}``.

    pyinfra's systemd.service cannot unmask, and enabling a masked unit
    fails, so this one operation does all three, each only when needed.
    """
    from pyinfra.facts.server import Command

    quoted = shlex.quote(unit)
    report = host.get_fact(
        Command,
        f"echo $(systemctl is-enabled {quoted} 2>/dev/null || true)"
        f" $(systemctl is-active {quoted} 2>/dev/null || true)",
    )
    enabled, _, active = (report or "").strip().partition(" ")
    if enabled.startswith("masked"):
        yield f"systemctl unmask {quoted}"
    if enabled not in ("enabled", "static", "alias", "indirect", "generated"):
        yield f"systemctl enable {quoted}"
    if active != "active":
        yield f"systemctl start {quoted}"
