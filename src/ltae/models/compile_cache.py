"""Disk cache for the C callbacks nutpie compiles with numba.

Why: pytensor already caches each op's numba code on disk, but nutpie wraps the model's
log-density in a ``numba.cfunc`` that links every op into one module and runs LLVM's optimiser over
all of it, in every new process. On the 208 x 4 MMM that is 12-15 s of a 27 s fit, for machine code
that is the same each time (the data reach it at run time through a pointer, not as constants).

How: while nutpie compiles, :func:`nutpie_cfunc_cache` stands in for ``numba.cfunc``. For nutpie's
own callbacks it builds numba's ``CFunc`` with a cache object that stores numba's compile result
(``CompileResult._reduce``: object code, bitcode, environments; the format numba's ``cache=True``
writes) in ``<cache dir>/nutpie/``, keyed by a fingerprint of everything the code depends on:

* pytensor's own cache key of the log-density and expand graphs (graph, constants, fastmath),
* the closure nutpie builds around them (dimension, the dtype and rank of each shared array, the
  layout of its user-data record), the code of each wrapper function,
* numba / llvmlite / nutpie / pytensor / Python versions, the CPU (``codegen.magic_tuple``), the
  cfunc options and numba's optimisation level.

Anything the fingerprint does not understand makes the callback uncacheable: it is compiled as
before. After loading, the caller evaluates the log density once and recompiles if it raises. Files are written atomically with a checksum; a file that fails the checksum or cannot be
rebuilt is ignored and replaced. A callback once built is also kept in memory, so a second fit of
the same model structure in one process (holdout, recovery studies, tests) skips the compile.

**The cache is trusted code.** Its files are unpickled and their machine code is run; the checksum
catches corruption, not tampering. So the cache folders are created private (mode 0700) and
:func:`private_dir` tightens a folder of ours that others could write to; a cache folder that
belongs to another user, or that others can write to and we cannot fix, is not used (the callback
is compiled in memory instead, with a warning). Never point ``LTAE_CACHE_DIR`` at a folder other
people can write to.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import sys
import threading
import types
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

_LOCK = threading.RLock()
_IN_MEMORY: dict[str, object] = {}  # key -> CFunc, least recently used first
_MAX_IN_MEMORY = 64
_MAGIC = b"LTAE-CFUNC-1\n"


class _Uncacheable(Exception):
    pass


def _canon_dtype(dt: np.dtype):
    """Layout of a (possibly structured) dtype without its field names (nutpie names the user-data
    fields by random uuids; the machine code only depends on offsets and types)."""
    if dt.fields:
        return ("struct", dt.itemsize, [(_canon_dtype(f[0]), f[1]) for f in (dt.fields[n] for n in dt.names)])
    if dt.subdtype is not None:
        base, shape = dt.subdtype
        return ("sub", _canon_dtype(base), list(shape))
    return dt.str


def _code_fingerprint(code: types.CodeType) -> str:
    h = hashlib.sha256(code.co_code)
    h.update(repr(code.co_names).encode())
    for c in code.co_consts:
        h.update((_code_fingerprint(c) if isinstance(c, types.CodeType) else repr(c)).encode())
    return h.hexdigest()


def _fingerprint(obj, depth: int = 0):
    """JSON-like description of what compiled code built from ``obj`` depends on."""
    from numba.core.dispatcher import Dispatcher
    from numba.core.extending import _Intrinsic
    from pytensor.link.numba.cache import CACHED_SRC_FUNCTIONS

    if depth > 20:
        raise _Uncacheable("closure too deep")
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return repr(obj)
    if isinstance(obj, np.generic):
        return ("scalar", obj.dtype.str, repr(obj.item()))
    if isinstance(obj, types.ModuleType):  # library modules: their versions are part of the key
        return ("module", obj.__name__)
    if isinstance(obj, np.ndarray):  # only its type matters: values come from user data at run time
        return ("ndarray", obj.dtype.str, obj.ndim, bool(obj.flags.c_contiguous), bool(obj.flags.writeable))
    if isinstance(obj, np.dtype):
        return ("dtype", _canon_dtype(obj))
    if isinstance(obj, (tuple, list)):
        return (type(obj).__name__, [_fingerprint(x, depth + 1) for x in obj])
    if isinstance(obj, Dispatcher):
        key = CACHED_SRC_FUNCTIONS.get(obj.py_func)
        if key is not None:
            return ("pytensor", key)
        return ("dispatcher", repr(sorted(obj.targetoptions.items())), _fingerprint(obj.py_func, depth + 1))
    if isinstance(obj, _Intrinsic):
        return ("intrinsic", _fingerprint(obj._defn, depth + 1))
    if isinstance(obj, types.FunctionType):
        key = CACHED_SRC_FUNCTIONS.get(obj)
        if key is not None:
            return ("pytensor", key)
        cells = [_fingerprint(c.cell_contents, depth + 1) for c in obj.__closure__ or ()]
        return ("function", obj.__module__, obj.__qualname__, _code_fingerprint(obj.__code__), cells)
    raise _Uncacheable(f"cannot fingerprint a {type(obj).__name__}")


def _key(pyfunc, sig, options: dict) -> str:
    import llvmlite
    import numba
    import nutpie
    import pytensor
    from numba.core.registry import cpu_target

    parts = (
        sys.version, numba.__version__, llvmlite.__version__, nutpie.__version__, pytensor.__version__,
        repr(cpu_target.target_context.codegen().magic_tuple()), numba.config.OPT, numba.config.BOUNDSCHECK,
        str(sig), repr(sorted(options.items())), _fingerprint(pyfunc),
    )
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:40]


class _DiskCache:
    """numba cache protocol (``load_overload`` / ``save_overload``) on one file."""

    def __init__(self, path: Path):
        self.path = path

    def load_overload(self, sig, target_context):
        from numba.core.compiler import CompileResult

        try:
            blob = self.path.read_bytes()
        except OSError:
            return None
        try:
            if not blob.startswith(_MAGIC):
                raise ValueError("not a cache file")
            digest, payload = blob[len(_MAGIC):len(_MAGIC) + 32], blob[len(_MAGIC) + 32:]
            if hashlib.sha256(payload).digest() != digest:
                raise ValueError("checksum")
            target_context.refresh()
            # our own file, written by save_overload below in numba's cache format (numba's
            # cache=True pickles the same payload)
            return CompileResult._rebuild(target_context, *pickle.loads(payload))  # noqa: S301
        except Exception:  # noqa: BLE001 - a bad file is recompiled and replaced
            self.path.unlink(missing_ok=True)
            return None

    def save_overload(self, sig, cres):
        if cres.lifted or cres.library.has_dynamic_globals:
            return
        # as numba's cache=True does, environments that cannot be rebuilt from a module (those of
        # code generated at run time, which runs in nopython mode and never reads them) are dropped;
        # a callback that still raises after loading is caught by the caller and recompiled
        try:
            payload = pickle.dumps(cres._reduce(), protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:  # noqa: BLE001 - uncacheable: keep the compiled code, skip the file
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_bytes(_MAGIC + hashlib.sha256(payload).digest() + payload)
        os.replace(tmp, self.path)


def private_dir(directory: Path) -> Path | None:
    """``directory``, created with mode 0700 (missing parents too); an existing folder of ours is
    made private. None (with a warning) when it belongs to someone else or stays writable by others."""
    import stat
    import warnings

    directory = Path(directory)
    missing = []
    p = directory
    while not p.exists() and p != p.parent:
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        try:
            d.mkdir(mode=0o700)
        except FileExistsError:
            pass
    st = directory.stat()
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        warnings.warn(f"compile cache {directory} belongs to another user: not used (compiling in memory)",
                      RuntimeWarning, stacklevel=2)
        return None
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH | stat.S_IRWXG | stat.S_IRWXO):
        try:
            os.chmod(directory, 0o700)
        except OSError:
            pass
        if directory.stat().st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            warnings.warn(f"compile cache {directory} is writable by other users: not used (compiling in memory)",
                          RuntimeWarning, stacklevel=2)
            return None
    return directory


def cache_path(directory: Path, key: str) -> Path:
    """The cache file of a compiled callback with key ``key``."""
    return directory / f"{key}.nbc"


@contextmanager
def nutpie_cfunc_cache(directory: Path | None) -> Iterator[list[str]]:
    """While active, nutpie's numba C callbacks are loaded from / saved to ``directory`` (memory
    only when ``None``). Yields the list of cache keys used, for :func:`evict`."""
    import numba
    from numba.core import sigutils
    from numba.core.ccallback import CFunc

    used: list[str] = []
    original = numba.cfunc

    def cfunc(sig, locals=None, cache=False, pipeline_class=None, **options):  # noqa: A002
        def wrapper(pyfunc):
            if getattr(pyfunc, "__module__", "") != "nutpie.compile_pymc" or pipeline_class is not None:
                return original(sig, locals=locals or {}, cache=cache, pipeline_class=pipeline_class,
                                **options)(pyfunc)
            nsig = sigutils.normalize_signature(sig)
            try:
                key = _key(pyfunc, nsig, options)
            except _Uncacheable:
                return original(sig, locals=locals or {}, cache=cache, **options)(pyfunc)
            used.append(key)
            if key in _IN_MEMORY:
                _IN_MEMORY[key] = _IN_MEMORY.pop(key)  # most recently used last
                return _IN_MEMORY[key]
            res = CFunc(pyfunc, nsig, locals=dict(locals or {}), options=options)
            if directory is not None:
                res._cache = _DiskCache(cache_path(directory, key))
            res.compile()
            _IN_MEMORY[key] = res
            while len(_IN_MEMORY) > _MAX_IN_MEMORY:  # a long-lived process: keep the most recent ones
                _IN_MEMORY.pop(next(iter(_IN_MEMORY)))  # (models still using one keep it alive)
            return res

        return wrapper

    with _LOCK:
        numba.cfunc = cfunc
        try:
            yield used
        finally:
            numba.cfunc = original


def evict(directory: Path | None, keys: list[str]) -> None:
    """Forget the given callbacks (in memory and on disk)."""
    with _LOCK:
        for key in keys:
            _IN_MEMORY.pop(key, None)
            if directory is not None:
                cache_path(directory, key).unlink(missing_ok=True)
