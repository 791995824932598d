"""The output policy every stage follows: check output paths first, write under a temporary name, rename.

- ``check_outputs`` runs before any work: an output that would replace an input, a folder where a
  file is expected (or the reverse), an unwritable folder or a name too long for the file system is
  refused with one line, so a run never fails after minutes of work on a path it could not write.
- ``atomic_file`` / ``atomic_dir`` write under a temporary name beside the destination and rename on
  success: a crash, an error or Ctrl-C leaves no half-written file behind, and an existing output is
  only replaced once its successor is complete. Rename within one folder is atomic on POSIX.
- Temporary names carry this host and process ID, so the next run removes what a killed run
  (``kill -9``) left behind, and never what a live run is still writing.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import socket
import stat
import tempfile
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path

from gcmlm.common.errors import GcmlmError

# ".<name>.tmp-<host>-<pid>-<8 random>" (+ the destination's suffixes for files): what the name of an
# output must leave room for, and how a leftover is recognised.
_HOST = f"{zlib.crc32(socket.gethostname().encode()):08x}"
_TMP_EXTRA = len(".") + len(".tmp-") + len(_HOST) + 1 + 10 + 1 + 8


def _tmp_prefix(dest: Path, kind: str) -> str:
    return f".{dest.name}.{kind}-{_HOST}-{os.getpid()}-"


def _tmp_name(dest: Path) -> Path:
    fd, name = tempfile.mkstemp(prefix=_tmp_prefix(dest, "tmp"), dir=dest.parent)
    os.close(fd)
    return Path(name)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def remove_stale_temporaries(dest: Path) -> list[Path]:
    """Remove what a killed run left beside ``dest``: temporaries of this host whose process is gone."""
    pattern = re.compile(rf"^\.{re.escape(dest.name)}\.(?:tmp|old)-{_HOST}-(\d+)-")
    removed = []
    with contextlib.suppress(OSError):
        for entry in dest.parent.iterdir():
            match = pattern.match(entry.name)
            if match and not _pid_alive(int(match.group(1))):
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)
                removed.append(entry)
    return removed


def _name_max(folder: Path) -> int:
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        return 255


def _kind_of(path: Path) -> str | None:
    """"dir", "file" (anything else that exists) or None; a name the system refuses does not exist."""
    try:
        return "dir" if stat.S_ISDIR(os.stat(path).st_mode) else "file"
    except OSError:
        return "file" if os.path.islink(path) else None


def _existing_ancestor(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if _kind_of(candidate):
            return candidate
    return Path(path.anchor or ".")


def _replaces(dest: Path, source: Path) -> bool:
    """Whether writing ``dest`` (a file, or a folder replaced whole) destroys ``source``."""
    return dest == source or dest in source.parents


def check_output(path: str | os.PathLike, kind: str = "file", inputs: Iterable[str | os.PathLike] = ()) -> Path:
    """Refuse, before any work, an output path that could not be written or would destroy user data.

    ``kind`` is "file" or "dir". Refused: a file output that is an existing folder, a folder output
    that is an existing file, an output that is (or, for a folder, holds) one of ``inputs``, a path
    whose nearest existing ancestor is not a writable folder, and a name too long for the file
    system once the temporary suffix is added.
    """
    if kind not in ("file", "dir"):
        raise ValueError(f"kind must be 'file' or 'dir', not {kind!r}")
    dest = Path(os.path.abspath(path))
    found = _kind_of(dest)
    if kind == "file" and found == "dir":
        raise GcmlmError("output is an existing folder; expected a file path", path)
    if kind == "dir" and found == "file":
        raise GcmlmError("output folder is an existing file; refusing to replace it", path)
    for source in inputs:
        if _replaces(dest, Path(os.path.abspath(source))):
            raise GcmlmError(f"output would overwrite the input {os.fspath(source)}", path)
    ancestor = _existing_ancestor(dest.parent)
    if _kind_of(ancestor) != "dir":
        raise GcmlmError(f"{ancestor} is not a folder, so the output cannot be created", path)
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise GcmlmError(f"folder {ancestor} is not writable", path)
    limit = _name_max(ancestor)
    for part in dest.relative_to(ancestor).parts:
        if len(os.fsencode(part)) > limit:
            raise GcmlmError(f"name too long for the file system ({len(os.fsencode(part))} bytes; at most {limit})",
                             path)
    needed = len(os.fsencode(dest.name)) + _TMP_EXTRA + len("".join(dest.suffixes))
    if needed > limit:
        room = limit - (needed - len(os.fsencode(dest.name)))
        raise GcmlmError(f"name too long for the file system ({len(os.fsencode(dest.name))} bytes; "
                         f"at most {room} here, as outputs are first written under a temporary name)", path)
    return dest


def check_outputs(files: Iterable[str | os.PathLike | None] = (), dirs: Iterable[str | os.PathLike | None] = (),
                  inputs: Iterable[str | os.PathLike | None] = ()) -> None:
    """``check_output`` for every output of a stage (``None`` entries, unset options, are skipped)."""
    sources = [p for p in inputs if p is not None]
    seen: dict[Path, str | os.PathLike] = {}
    for kind, paths in (("file", files), ("dir", dirs)):
        for path in paths:
            if path is None:
                continue
            dest = check_output(path, kind, sources)
            if dest in seen:
                raise GcmlmError(f"the same path is given for two outputs ({os.fspath(seen[dest])})", path)
            seen[dest] = path


@contextlib.contextmanager
def atomic_file(dest: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``dest``; it becomes ``dest`` when the block succeeds.

    The file keeps ``dest``'s suffix so libraries that choose a format by suffix still work.
    """
    dest = Path(dest)
    _make_parent(dest)
    tmp = _tmp_name(dest)
    tmp_with_suffix = tmp.with_name(tmp.name + "".join(dest.suffixes))
    tmp.rename(tmp_with_suffix)
    try:
        yield tmp_with_suffix
        os.chmod(tmp_with_suffix, 0o644)
        os.replace(tmp_with_suffix, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_with_suffix.unlink()
        raise


@contextlib.contextmanager
def atomic_dir(dest: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``dest``; it replaces ``dest`` when the block succeeds."""
    dest = Path(dest)
    _make_parent(dest)
    tmp = Path(tempfile.mkdtemp(prefix=_tmp_prefix(dest, "tmp"), dir=dest.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o755)
        if dest.exists():
            old = Path(tempfile.mkdtemp(prefix=_tmp_prefix(dest, "old"), dir=dest.parent))
            os.replace(dest, old / "x")
            os.replace(tmp, dest)
            shutil.rmtree(old)
        else:
            os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _make_parent(dest: Path) -> None:
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise GcmlmError(f"cannot create the output folder ({os.strerror(exc.errno or errno.EIO)})", dest) from None
    remove_stale_temporaries(dest)


def write_text(dest: str | os.PathLike, text: str) -> Path:
    with atomic_file(dest) as tmp:
        tmp.write_text(text)
    return Path(dest)


def write_json(dest: str | os.PathLike, obj) -> Path:
    import json

    return write_text(dest, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(obj):
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
