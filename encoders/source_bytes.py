"""Reading a media source's bytes once, with a cap, from regular files only.

`/dev/zero`, a FIFO or a directory given as a media path would otherwise be read until memory runs out
(or block forever): every loader goes through `read_source` (images, sounds) or `check_file` (clips,
which PyAV reads from the path itself), which refuse anything but a regular file no larger than the cap.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

from mm.errors import InputError


def _limit_note(max_bytes: int) -> str:
    return f"the limit is {max_bytes} bytes (Limits.max_file_bytes, --max-file-mb)"


def check_file(path: str | Path, max_bytes: int | None, name: str) -> Path:
    """The path of an existing, non-empty regular file no larger than `max_bytes`, or an InputError."""
    path = Path(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise InputError(f"{name}: no such file") from None
    except OSError as e:
        raise InputError(f"{name}: cannot read the file ({e.strerror or e})") from None
    if stat.S_ISDIR(st.st_mode):
        raise InputError(f"{name}: is a directory, not a regular file")
    if not stat.S_ISREG(st.st_mode):
        raise InputError(f"{name}: not a regular file (a device, pipe or socket cannot be read as media)")
    if st.st_size == 0:
        raise InputError(f"{name}: the file is empty")
    if max_bytes is not None and st.st_size > max_bytes:
        raise InputError(f"{name}: the file is {st.st_size} bytes; {_limit_note(max_bytes)}")
    return path


def read_source(source: Any, max_bytes: int | None, name: str) -> bytes:
    """A path, bytes or binary file object -> its bytes, at most `max_bytes` of them.

    Paths: regular files only, stat first, then at most `max_bytes + 1` bytes read (a file that grows
    while being read is still caught). An empty source is an InputError.
    """
    if isinstance(source, (str, Path)):
        path = check_file(source, max_bytes, name)
        try:
            with open(path, "rb") as f:
                data = f.read() if max_bytes is None else f.read(max_bytes + 1)
        except OSError as e:
            raise InputError(f"{name}: cannot read the file ({e.strerror or e})") from None
    elif isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    elif hasattr(source, "read"):
        data = source.read() if max_bytes is None else source.read(max_bytes + 1)
        if not isinstance(data, (bytes, bytearray)):
            raise InputError(f"{name}: the file object must be opened in binary mode")
        data = bytes(data)
    else:
        raise InputError(f"{name}: expected a path, bytes or a binary file object")
    if not data:
        raise InputError(f"{name}: the file is empty")
    if max_bytes is not None and len(data) > max_bytes:
        raise InputError(f"{name}: more than {max_bytes} bytes; {_limit_note(max_bytes)}")
    return data
