"""Atomic writes for every artefact: write to a temporary file in the same folder, fsync, rename.

A killed run therefore leaves either the old file or the new one, never half a file.
Posteriors are stored as netCDF (never pickle); plain results as JSON/CSV.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it is renamed onto ``path``."""
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=suffix or ".tmp", dir=final.parent)
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


def _default(o: Any):
    import numpy as np

    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    if hasattr(o, "model_dump"):
        return o.model_dump(mode="json")
    if hasattr(o, "isoformat"):
        return o.isoformat()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, default=_default, allow_nan=True))


def atomic_write_csv(path: str | os.PathLike, df) -> Path:
    return atomic_write_text(path, df.to_csv(index=False))


def write_netcdf(path: str | os.PathLike, idata) -> Path:
    """Write ArviZ data (InferenceData or DataTree) to netCDF atomically."""
    with atomic_path(path, suffix=".nc") as tmp:
        if hasattr(idata, "to_netcdf"):
            idata.to_netcdf(str(tmp))
        else:  # xarray DataTree
            idata.to_netcdf(tmp)
    return Path(path)


def remove_stale_temporaries(folder: str | os.PathLike) -> int:
    """Delete temporaries left by a killed run (names start with '.' and end '.tmp'/'.nc')."""
    n = 0
    for p in Path(folder).rglob(".*"):
        if p.is_file() and (p.name.endswith(".tmp") or p.name.endswith(".nc")) and p.name.count(".") >= 2:
            p.unlink(missing_ok=True)
            n += 1
    return n
