"""Plain file input/output that every layer may use: atomic writes, strict JSON, safe CSV.

This module depends on nothing else in ltae, so the data layer writes its files (prepared data,
synthetic data) through it without importing the results store; :mod:`ltae.store.artifacts`
re-exports all of it and adds netCDF posteriors, checksums and the cleanup of temporaries.

* **Atomic writes**: a file is written to a temporary ``.ltae-tmp-<pid>-<name>.<random><suffix>``
  in the same folder, fsynced and renamed into place, so a killed process leaves the old file or
  the new one, never half a file.
* **Strict JSON** (RFC 8259): NaN and infinities are written as ``null``.
* **Safe CSV** (CWE-1236, "CSV injection"): names in ltae's CSV outputs come from the user's
  data. A text cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return would be
  run as a formula when the file is opened in a spreadsheet, so ltae writes it with a leading
  apostrophe (``=1+1`` -> ``'=1+1``). Numbers are never touched. ltae's readers undo it: a cell
  ``'`` + one of those characters is read without the apostrophe, so a file ltae wrote reads back
  with the original names (a name that itself starts with apostrophes before such a character gets
  one more, so the round trip is exact).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# ---- spreadsheet formula neutralisation ------------------------------------------------------------
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _formula_like(text: str) -> bool:
    """Starts with a formula character, possibly after apostrophes (so that escaping round-trips:
    a name that itself starts with ``'=`` is written ``''=`` and read back as ``'=``)."""
    return text.lstrip("'").startswith(FORMULA_START)


def neutralize_cell(value: Any) -> Any:
    """A text cell that a spreadsheet would evaluate gets a leading apostrophe; other values as is."""
    if isinstance(value, str) and _formula_like(value):
        return "'" + value
    return value


def unneutralize_cell(value: Any) -> Any:
    """Inverse of :func:`neutralize_cell` (other values as is)."""
    if isinstance(value, str) and value.startswith("'") and _formula_like(value):
        return value[1:]
    return value


def _text_columns(df):
    import pandas as pd

    return [i for i, dt in enumerate(df.dtypes)
            if pd.api.types.is_object_dtype(dt) or isinstance(dt, pd.StringDtype)]


def _map_text(df, fn):
    """Copy of ``df`` with ``fn`` applied to the headers and to every cell of the text columns."""
    out = df.copy()
    out.columns = [fn(c) for c in out.columns]
    for i in _text_columns(out):
        out.isetitem(i, out.iloc[:, i].map(fn))
    return out


def neutralize_frame(df):
    """Copy of ``df`` with formula-like text in the headers and text cells neutralised."""
    return _map_text(df, neutralize_cell)


def unneutralize_frame(df):
    """Inverse of :func:`neutralize_frame`."""
    return _map_text(df, unneutralize_cell)


# ---- atomic writes -------------------------------------------------------------------------------
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
    """Write UTF-8 text to ``path`` atomically; returns the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write bytes to ``path`` atomically; returns the path."""
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
    """Write ``obj`` as strict, indented JSON (NaN and infinities as null) atomically; returns the path."""
    return atomic_write_text(path, dumps_strict(obj, indent=2, ensure_ascii=False))


# ---- CSV ---------------------------------------------------------------------------------------------
def atomic_write_csv(path: str | os.PathLike, df, **to_csv_kw) -> Path:
    """Write ``df`` as CSV (no index) atomically, with formula-like text cells neutralised."""
    return atomic_write_text(path, neutralize_frame(df).to_csv(index=False, **to_csv_kw))


def read_csv(path: str | os.PathLike, **kw):
    """Read a CSV written by :func:`atomic_write_csv` (neutralised cells restored)."""
    import pandas as pd

    return unneutralize_frame(pd.read_csv(path, **kw))
