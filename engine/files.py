"""Safe file writes shared by checkpoints, traces and exports."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

NEW_FILE_MODE = 0o666  # less the umask, as for any file a program creates (0644 under umask 022)


def write_atomic(path: Path | str, data: bytes) -> None:
    """Write `data` to a temporary file beside `path`, then rename it into place.

    A crash or kill never leaves a half-written `path`; an error (unwritable folder, full disk)
    raises OSError and leaves neither `path` nor the temporary file behind. The file gets the
    permissions of a newly created file (0666 less the umask), not mkstemp's private 0600, so a
    figure saved for a colleague or a web folder is readable by others.
    """
    path = Path(path)
    tmp, fd = _create_beside(path)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _create_beside(path: Path) -> tuple[Path, int]:
    """A new, empty, uniquely named file in `path`'s folder, opened for writing."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.part"
        try:
            return tmp, os.open(tmp, flags, NEW_FILE_MODE)
        except FileExistsError:
            continue
