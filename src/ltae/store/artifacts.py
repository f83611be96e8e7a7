"""Atomic writes for every artefact: write to a temporary file in the same folder, fsync, rename.

The writers themselves (text, JSON, CSV) live in the neutral :mod:`ltae.io` and are re-exported
here; this module adds netCDF posteriors, checksums and the cleanup of stale temporaries.

A killed run therefore leaves either the old file or the new one, never half a file.
Posteriors are stored as netCDF (never pickle); plain results as JSON/CSV.

Temporary files are named ``.ltae-tmp-<pid>-<name>.<random><suffix>``: only names of that form,
whose writing process is gone, are ever removed by :func:`remove_stale_temporaries`.

JSON is strict (RFC 8259): NaN and infinities are written as ``null``.

CSV cells that a spreadsheet would run as a formula (text starting with ``=``, ``+``, ``-``, ``@``,
a tab or a carriage return; names come from the user's data) are written with a leading
apostrophe; numbers are never touched. :func:`read_csv` undoes it, and so does ltae's data loader.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from ltae.io import (  # noqa: F401 - the atomic writers live in the neutral ltae.io; re-exported
    _TMP_RE,
    TMP_PREFIX,
    atomic_path,
    atomic_write_bytes,
    atomic_write_csv,
    atomic_write_json,
    atomic_write_text,
    dumps_strict,
    read_csv,
    strict_json_value,
)


# ---- netCDF ----------------------------------------------------------------------------------------
def write_netcdf(path: str | os.PathLike, idata) -> Path:
    """Write ArviZ data (InferenceData or DataTree) to netCDF atomically."""
    with atomic_path(path, suffix=".nc") as tmp:
        if hasattr(idata, "to_netcdf"):
            idata.to_netcdf(str(tmp))
        else:  # xarray DataTree
            idata.to_netcdf(tmp)
    return Path(path)


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's content."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


# ---- cleanup ---------------------------------------------------------------------------------------
def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this machine."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def remove_stale_temporaries(folder: str | os.PathLike, subfolders=("posteriors", "figures")) -> int:
    """Delete ltae's own temporary files (``.ltae-tmp-<pid>-...``) whose writing process is gone, in
    ``folder`` and its ``subfolders`` only (not recursively; no other file is ever touched)."""
    n = 0
    root = Path(folder)
    for d in (root, *(root / s for s in subfolders)):
        if not d.is_dir():
            continue
        for p in d.glob(f"{TMP_PREFIX}*"):
            m = _TMP_RE.match(p.name)
            if not m or not p.is_file() or p.is_symlink():
                continue
            if pid_alive(int(m.group(1))):  # a live writer (another ltae command) or a reused pid
                continue
            p.unlink(missing_ok=True)
            n += 1
    return n
