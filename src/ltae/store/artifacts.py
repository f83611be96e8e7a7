"""Atomic writes for every artefact: write to a temporary file in the same folder, fsync, rename.

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

import contextlib
import hashlib
import json
import math
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ltae.data.csvsafe import neutralize_frame, unneutralize_frame

TMP_PREFIX = ".ltae-tmp-"
_TMP_RE = re.compile(r"^\.ltae-tmp-(\d+)-")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it is renamed onto ``path``."""
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f"{TMP_PREFIX}{os.getpid()}-{final.name}.", suffix=suffix or ".tmp",
                               dir=final.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp_path, 0o644)
        os.replace(tmp_path, final)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


# ---- strict JSON ----------------------------------------------------------------------------------
def strict_json_value(o: Any) -> Any:
    """``o`` with NaN/inf floats replaced by None and numpy/pandas/pydantic values made plain."""
    import numpy as np

    if isinstance(o, float | np.floating):
        f = float(o)
        return f if math.isfinite(f) else None
    if o is None or isinstance(o, str | bool | int):
        return o
    if isinstance(o, np.bool_):
        return bool(o)
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, dict):
        return {str(k) if not isinstance(k, str) else k: strict_json_value(v) for k, v in o.items()}
    if isinstance(o, list | tuple | set | frozenset):
        return [strict_json_value(v) for v in o]
    if isinstance(o, np.ndarray):
        return strict_json_value(o.tolist())
    if isinstance(o, Path):
        return str(o)
    if hasattr(o, "model_dump"):
        return strict_json_value(o.model_dump(mode="json"))
    if hasattr(o, "isoformat"):
        return o.isoformat()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def dumps_strict(obj: Any, **kw) -> str:
    """``json.dumps`` that never writes NaN/Infinity (they become null)."""
    return json.dumps(strict_json_value(obj), allow_nan=False, **kw)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, dumps_strict(obj, indent=2, ensure_ascii=False))


# ---- CSV: spreadsheet formula neutralisation (ltae.data.csvsafe) ---------------------------------
def atomic_write_csv(path: str | os.PathLike, df, **to_csv_kw) -> Path:
    """Write ``df`` as CSV (no index) atomically, with formula-like text cells neutralised."""
    return atomic_write_text(path, neutralize_frame(df).to_csv(index=False, **to_csv_kw))


def read_csv(path: str | os.PathLike, **kw):
    """Read a CSV written by :func:`atomic_write_csv` (neutralised cells restored)."""
    import pandas as pd

    return unneutralize_frame(pd.read_csv(path, **kw))


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
