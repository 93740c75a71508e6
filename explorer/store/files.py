"""Atomic file writes, checksums, and reading large files into the page cache."""

from __future__ import annotations

import hashlib
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

_BLOCK = 1 << 22
_READ_BLOCK = 1 << 24

# progress(done_bytes, total_bytes)
ByteProgress = Callable[[int, int], None]


def sha256_file(path: Path, progress: ByteProgress | None = None) -> str:
    h = hashlib.sha256()
    total = os.path.getsize(path) if progress else 0
    done = 0
    with open(path, "rb") as f:
        while block := f.read(_BLOCK):
            h.update(block)
            done += len(block)
            if progress:
                progress(done, total)
    return h.hexdigest()


def resident_fraction(path: Path, samples: int = 512) -> float | None:
    """Share of sampled pages of ``path`` already in the page cache (mincore), or None
    where that cannot be asked (not Linux/macOS, empty file, no libc)."""
    import ctypes
    import mmap

    size = os.path.getsize(path)
    page = mmap.PAGESIZE
    if size == 0:
        return None
    try:
        mincore = ctypes.CDLL(None, use_errno=True).mincore  # the C library is part of the process
    except (OSError, AttributeError):
        return None
    import numpy as np

    mm = np.memmap(path, dtype=np.uint8, mode="r")  # page-aligned: the mapping starts at offset 0
    n_pages = (size + page - 1) // page
    vec = (ctypes.c_ubyte * n_pages)()
    if mincore(ctypes.c_void_p(mm.ctypes.data), ctypes.c_size_t(size), vec) != 0:
        return None
    picks = np.linspace(0, n_pages - 1, min(samples, n_pages)).astype(np.int64)
    flags = np.frombuffer(vec, dtype=np.uint8)[picks]
    del mm
    return float(np.mean(flags & 1))


def read_into_cache(path: Path, progress: ByteProgress | None = None) -> None:
    """Read a file once, sequentially, so that a memory map of it then finds its pages in
    the page cache: on a cold disk sequential reads (with read-ahead) are much faster
    than a matrix product's page faults, and they can report progress."""
    total = os.path.getsize(path)
    buf = bytearray(_READ_BLOCK)
    done = 0
    with open(path, "rb", buffering=0) as f:
        if hasattr(os, "posix_fadvise"):
            os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_SEQUENTIAL)
        while n := f.readinto(buf):
            done += n
            if progress:
                progress(done, total)


def fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_path(final: Path) -> Iterator[Path]:
    """Yield a temporary path next to ``final``; rename it into place on success.

    A crash leaves at most a ``*.tmp-PID`` file, never a half-written ``final``.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f"{final.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, final)
        fsync_dir(final.parent)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextmanager
def atomic_dir(final: Path) -> Iterator[Path]:
    """Yield a temporary directory; it replaces ``final`` (whole) on success."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f"{final.name}.tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        yield tmp
        for child in tmp.iterdir():
            with open(child, "rb") as f:
                os.fsync(f.fileno())
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        fsync_dir(final.parent)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def remove_stale_temps(directory: Path) -> int:
    """Delete ``*.tmp-PID`` leftovers of killed writers whose process is gone."""
    removed = 0
    if not directory.is_dir():
        return 0
    for p in directory.rglob("*.tmp-*"):
        pid = p.name.rsplit(".tmp-", 1)[-1]
        if pid.isdigit() and pid_alive(int(pid)):
            continue
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
        removed += 1
    return removed


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine (this process counts as alive)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
