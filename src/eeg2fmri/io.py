"""Atomic file writing: nothing is half-written (write to a temporary file, then rename)."""

from __future__ import annotations

import errno
import glob
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from eeg2fmri.errors import InputError


@contextmanager
def atomic_path(path: str | Path, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path next to `path` (`.<name>.<random><suffix>`); rename it onto `path`
    only if the block succeeds. Temporary files an earlier, killed writer of `path` left are
    removed first (one job writes a given output), and the file gets the mode the umask gives,
    like any other file (mkstemp's is 0600)."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        for stale in path.parent.glob(f".{glob.escape(path.name)}.*.tmp*"):
            stale.unlink(missing_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    except OSError as e:
        raise _unwritable(path, e) from None
    os.fchmod(fd, 0o666 & ~_umask())
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except OSError as e:
        if e.errno in _STORAGE_ERRORS:
            raise _unwritable(path, e) from None
        raise
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextmanager
def atomic_files(folder: str | Path, stem: str, last: str = "") -> Iterator[Path]:
    """An empty temporary folder in `folder` for a writer that makes several files at once
    (BrainVision's .eeg/.vmrk/.vhdr); when the block succeeds its files are renamed into `folder`
    (the one ending in `last` after the others), else it is removed. Any OSError while writing
    is one line naming the folder (numpy's short writes on a full disk carry no errno)."""
    folder = Path(folder)
    tmp = folder / f".{stem}.files.tmp"
    try:
        shutil.rmtree(tmp, ignore_errors=True)  # left by a killed writer
        tmp.mkdir(parents=True)
    except OSError as e:
        raise _unwritable(folder / stem, e) from None
    try:
        yield tmp
        for f in sorted(tmp.iterdir(), key=lambda f: (f.name.endswith(last) and bool(last),
                                                      f.name)):
            os.replace(f, folder / f.name)
    except OSError as e:
        raise _unwritable(folder / stem, e) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """An empty temporary folder beside `path` to fill with files that belong together (a
    features store); when the block succeeds it replaces `path` whole (the old folder is renamed
    away, the new one renamed in, the old one removed), else it is removed. A reader sees the old
    folder, the new one, or none: never a mixture, and never a half-written one."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        for stale in path.parent.glob(f".{glob.escape(path.name)}.*.dirtmp"):
            shutil.rmtree(stale, ignore_errors=True)  # left by a killed writer
        tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".dirtmp"))
        os.chmod(tmp, 0o777 & ~_umask())
    except OSError as e:
        raise _unwritable(path / "meta.json", e) from None
    try:
        yield tmp
        old = None
        if path.exists():
            old = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.old.",
                                        suffix=".dirtmp"))
            os.replace(path, old / path.name)
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except OSError as e:
        raise _unwritable(path / "meta.json", e) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


_STORAGE_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM)


def _unwritable(path: Path, error: OSError) -> InputError:
    """A write that the storage refused, as one line naming the file (and the free space)."""
    try:
        where = path.parent if path.parent.exists() else Path(".")
        free = f"; {shutil.disk_usage(where).free / 1e9:.1f} GB free there"
    except OSError:
        free = ""
    reason = error.strerror or f"short write, the disk may be full ({error})"
    return InputError(path, f"cannot be written: {reason}{free}")


def unwritable(folder: str | Path) -> str | None:
    """Why files cannot be created in `folder` (or in its nearest existing parent, where it
    does not exist yet), or None. Probes with a real temporary file: permission bits, ACLs,
    read-only mounts and a full disk all show, for root too where it lacks the capability."""
    where = Path(folder).absolute()
    while not where.exists() and where != where.parent:
        where = where.parent
    try:
        with tempfile.TemporaryFile(dir=where, prefix=".eeg2fmri-probe."):
            pass
    except OSError as e:
        return f"{where}: {e.strerror or e}"
    return None


_HELD: list[Any] = []  # lock files held for the life of this process


def hold_directory(folder: str | Path) -> str | None:
    """Take an exclusive lock on `folder`/eeg2fmri.lock for the life of this process (the
    kernel releases it when the process ends, however it ends); None when taken, else who holds
    it (process id and start time, as that process wrote them)."""
    import fcntl
    import time

    path = Path(folder) / "eeg2fmri.lock"
    if any(h.name == str(path) for h in _HELD):  # the Snakefile read again by this process
        return None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path, "a+")
    except OSError:
        return None  # an unwritable directory is refused in words elsewhere
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        holder = handle.read().strip() or "a running process"
        handle.close()
        return holder
    handle.seek(0)
    handle.truncate()
    handle.write(f"process {os.getpid()}, started {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
    handle.flush()
    _HELD.append(handle)
    return None


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def save_nifti(path: str | Path, data: np.ndarray, affine: np.ndarray,
               tr: float | None = None) -> None:
    """A NIfTI image (float32, mm; with `tr`, seconds per volume in the header), atomically."""
    import nibabel as nib

    img = nib.Nifti1Image(np.asarray(data, dtype=np.float32), np.asarray(affine))
    img.header.set_xyzt_units("mm", "sec")
    if tr is not None:
        img.header.set_zooms(img.header.get_zooms()[:3] + (tr,))
    with atomic_path(path, suffix=".tmp.nii.gz" if str(path).endswith(".gz") else ".tmp.nii"
                     ) as tmp:
        nib.save(img, tmp)


def write_json(path: str | Path, obj: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def save_npz(path: str | Path, **arrays: np.ndarray) -> None:
    """Compressed .npz, atomically."""
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez_compressed(tmp, **arrays)


def save_npy(path: str | Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, array)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    """A file's digest, read in chunks."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, algorithm).hexdigest()


def sha256sum(path: Path) -> str:
    return file_digest(path, "sha256")
