"""The archive: originals kept unchanged, named by content, written whole or not at all.

Every file is written to a temporary name in the same folder, flushed to disk and then
renamed, so a crash leaves either the complete file or none (never a truncated one that
a later cycle would file from). Names are the content hash, plus the sender's file name
made safe and capped at 120 *bytes* (a Linux name holds at most 255 bytes, and 79 × "ệ"
is already 237), so no sender text can make a path fail or leave the archive folder.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from .text import safe_filename


def file_mode() -> int:
    """The mode a new file gets under this process's umask (0640 under intake's 0027).

    Read from /proc rather than by setting and restoring the umask, which would briefly
    loosen it for every other thread.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return 0o666 & ~int(line.split()[1], 8)
    except OSError:
        pass
    return 0o640


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` in one step (same-folder temp file, fsync, rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name[:40]}.{os.getpid()}.tmp")
    try:
        with temp.open("wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def _keep(data_dir: Path, relative: Path, data: bytes) -> str:
    path = data_dir / relative
    if not path.exists() or path.stat().st_size != len(data):
        write_atomic(path, data)
    return relative.as_posix()


def keep_message(data_dir: Path, raw: bytes) -> str:
    """Archive a raw message; returns its path relative to ``data_dir``."""
    digest = hashlib.sha256(raw).hexdigest()
    return _keep(data_dir, Path("archive") / f"{digest}.eml", raw)


def keep_attachment(data_dir: Path, name: str, data: bytes) -> tuple[str, str]:
    """Archive one attachment; returns (relative path, sha256)."""
    digest = hashlib.sha256(data).hexdigest()
    file_name = f"{digest[:16]}-{safe_filename(name)}"
    return _keep(data_dir, Path("archive") / "files" / file_name, data), digest


def read(data_dir: Path, relative: str) -> bytes:
    return (data_dir / relative).read_bytes()
