"""Upload a file whose content must never be printed: a private key, a seed with passwords.

pyinfra's ``files.put`` shows the content as a diff under ``--diff``; the
roles mark the same tasks ``no_log``. ``put_secret`` compares the remote
file's SHA-1 with the local one and uploads only when they differ, without
reading the remote content, then sets owner and mode.
"""

from __future__ import annotations

import hashlib
import io

from pyinfra import host
from pyinfra.api import FileUploadCommand, StringCommand, operation
from pyinfra.facts.files import File, Sha1File
from pyinfra.operations.util.files import ensure_mode_int


@operation()
def put_secret(data: bytes, dest: str, user: str, group: str, mode: str):
    """Upload `data` to `dest` (owner `user`:`group`, octal `mode`) without showing it.

    + data: the file's bytes
    + dest: the remote path
    + user, group, mode: the file's owner, group and mode ("0600")

    The upload goes to a temporary file that gets its owner and mode before
    it is moved over `dest`, so the content is never readable by others.
    """
    wanted_mode = ensure_mode_int(mode)
    remote = host.get_fact(File, path=dest)
    same = bool(remote) and host.get_fact(Sha1File, path=dest) == hashlib.sha1(data).hexdigest()
    if not same:
        temp = host.get_temp_filename(f"hopthu-secret:{dest}")
        yield StringCommand("sh", "-c", f"umask 077; : > {temp}")
        yield FileUploadCommand(io.BytesIO(data), temp,
                                remote_temp_filename=host.get_temp_filename(temp))
        yield StringCommand("chown", f"{user}:{group}", temp)
        yield StringCommand("chmod", str(wanted_mode), temp)
        yield StringCommand("mv", "-f", temp, dest)
        return
    if remote["mode"] != wanted_mode:
        yield StringCommand("chmod", str(wanted_mode), dest)
    if remote["user"] != user or remote["group"] != group:
        yield StringCommand("chown", f"{user}:{group}", dest)
