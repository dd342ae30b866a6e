"""Copy files out of a researcher's outputs folder into the airlock, refusing anything that is not
a plain regular file directly inside that folder.

Every path component is opened with O_NOFOLLOW relative to the previous directory descriptor, so a
symlinked ``outputs`` folder, a symlink to the extract, a hard link to a file elsewhere, a device, a
FIFO or a name with ``..`` or ``/`` in it is refused, and the file read is the one that was checked
(no time-of-check/time-of-use gap: the checks are made on the open descriptor).
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import uuid
from dataclasses import dataclass
from pathlib import Path

from enclave.airlock.errors import UnsafeFile

# One path component, no hidden files, no separators, no "..": names the safe API writes.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
# A hard cap so a request cannot fill the airlock disk; the gate applies the (smaller) release limit.
MAX_SNAPSHOT_BYTES = 256 * 1024 * 1024
EVIDENCE_SUFFIX = ".evidence.json"
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC


@dataclass(frozen=True)
class SnapshotFile:
    name: str
    sha256: str
    size: int


def check_name(name: str) -> None:
    """Refuse a file name that is not one plain component (path traversal, hidden file, separator)."""
    if not isinstance(name, str) or not _NAME.match(name) or ".." in name:
        raise UnsafeFile(f"file name {name!r} is not allowed: use letters, digits, '.', '_', '-' and no path")


def evidence_name(name: str) -> str:
    """The evidence file the SDC-aware API writes beside an output (``x.csv`` -> ``x.evidence.json``)."""
    stem = name.rsplit(".", 1)[0] if "." in name else name
    return stem + EVIDENCE_SUFFIX


def open_dir_chain(root: Path, parts: list[str]) -> int:
    """Open ``root/parts...`` one component at a time without following any symlink; return the fd."""
    fd = os.open(root, _DIR_FLAGS)
    try:
        for part in parts:
            check_name(part)
            try:
                nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                raise UnsafeFile(f"folder {part!r} does not exist under {root}") from None
            except OSError:  # ELOOP / ENOTDIR: a symlink or a file where a folder should be
                raise UnsafeFile(f"{part!r} under {root} is not a real folder (symlink or file)") from None
            os.close(fd)
            fd = nxt
        return fd
    except BaseException:
        os.close(fd)
        raise


def _open_regular(dir_fd: int, name: str) -> tuple[int, os.stat_result]:
    check_name(name)
    try:
        before = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        raise UnsafeFile(f"output {name!r} does not exist in the outputs folder") from None
    if stat.S_ISLNK(before.st_mode):
        raise UnsafeFile(f"output {name!r} is a symbolic link: only regular files can be released")
    if not stat.S_ISREG(before.st_mode):
        raise UnsafeFile(f"output {name!r} is not a regular file (device, FIFO, socket or folder)")
    try:
        fd = os.open(name, _FILE_FLAGS, dir_fd=dir_fd)
    except OSError as exc:
        raise UnsafeFile(f"output {name!r} cannot be opened safely ({exc.strerror})") from None
    st = os.fstat(fd)
    if (st.st_dev, st.st_ino) != (before.st_dev, before.st_ino) or not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise UnsafeFile(f"output {name!r} changed while it was being opened")
    if st.st_nlink != 1:
        os.close(fd)
        raise UnsafeFile(f"output {name!r} has {st.st_nlink} hard links: a hard link may point outside the folder")
    if st.st_size > MAX_SNAPSHOT_BYTES:
        os.close(fd)
        raise UnsafeFile(f"output {name!r} is {st.st_size} bytes, over the airlock limit of {MAX_SNAPSHOT_BYTES}")
    return fd, st


def inspect_outputs(dir_fd: int, names: list[str]) -> None:
    """Check every named output (and its evidence, if any) without copying: raise on the first unsafe one."""
    for name in names:
        fd, _ = _open_regular(dir_fd, name)
        os.close(fd)


def _copy_fd(fd: int, dest: Path) -> SnapshotFile:
    digest = hashlib.sha256()
    size = 0
    with os.fdopen(fd, "rb", closefd=True) as src, open(dest, "xb") as out:
        while chunk := src.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
            if size > MAX_SNAPSHOT_BYTES:
                raise UnsafeFile(f"output {dest.name!r} grew over the airlock limit while being copied")
            out.write(chunk)
        out.flush()
        os.fsync(out.fileno())
    os.chmod(dest, 0o444)
    return SnapshotFile(dest.name, digest.hexdigest(), size)


def snapshot(dir_fd: int, names: list[str], dest_parent: Path, label: str) -> tuple[Path, list[SnapshotFile]]:
    """Copy ``names`` (plus each one's evidence file when present) into ``dest_parent/label``.

    Built in a hidden temporary folder and renamed into place, so ``dest_parent/label`` either
    holds every file or does not exist. Returns the folder and the files with their sha256.
    """
    dest_parent.mkdir(parents=True, exist_ok=True)
    final = dest_parent / label
    if final.exists():
        raise UnsafeFile(f"snapshot {final} already exists")
    tmp = dest_parent / f".tmp-{label}-{uuid.uuid4().hex}"
    tmp.mkdir(mode=0o700)
    try:
        copied: list[SnapshotFile] = []
        wanted = list(dict.fromkeys(names))
        for name in list(wanted):
            ev = evidence_name(name)
            if ev not in wanted and _exists_plain(dir_fd, ev):
                wanted.append(ev)
        for name in wanted:
            fd, _ = _open_regular(dir_fd, name)
            copied.append(_copy_fd(fd, tmp / name))
        os.chmod(tmp, 0o555)
        _fsync_dir(tmp)
        os.rename(tmp, final)
        _fsync_dir(dest_parent)
        return final, copied
    except BaseException:
        remove_tree(tmp)
        raise


def _exists_plain(dir_fd: int, name: str) -> bool:
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        return True
    except FileNotFoundError:
        return False


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_tree(path: Path) -> None:
    """Remove a (possibly read-only) tree we created; never follows symlinks out of it."""
    if not path.exists() and not path.is_symlink():
        return
    for p in [path, *path.rglob("*")]:
        if p.is_dir() and not p.is_symlink():
            os.chmod(p, 0o700)
    shutil.rmtree(path)
