"""Disk cache for the C callbacks nutpie compiles with numba, and for the whole compiled model.

Two layers: the callbacks (below) keyed by the rewritten graphs, and the compiled model (at the end
of this module) keyed by the graphs before rewriting, so that a model structure compiled before is
rebuilt without pytensor at all (about 1 s instead of 5-9 s at 208 x 4).

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
import uuid
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


# ---- the whole compiled model, keyed by its graph before rewriting -----------------------------------
# Loading the callbacks above still needs their keys, and those come from the rewritten graphs: in
# every new process pytensor builds the log density and its gradient, rewrites both graphs (4-9 s at
# 208 x 4) and links them, only to find the machine code on disk. This layer keys the compiled model
# by what those graphs are made from instead, before any rewriting:
#
# * the log-density graph and the graphs of the traced variables (every node's op with its
#   properties, every constant's value, every input's name and type), the order and names of the
#   free variables and ``var_names``;
# * the values of the integer and boolean shared variables (the dimension lengths) and the dtype and
#   shape of every other shared variable (the data: values reach the code at run time, as above);
# * the versions, the CPU and pytensor's and numba's settings, as for the callbacks.
#
# An entry (``<key>.model.json``) records what nutpie derived from those graphs (sizes, shapes,
# names, the order of the shared variables in the callbacks' user data) and the keys of the two
# callbacks; loading it rebuilds nutpie's compiled model from the model's own shared variables and
# the two callbacks, skipping pytensor. An op, a property or a constant the fingerprint does not
# understand makes the model uncacheable (it is compiled as before); an entry that does not fit (a
# missing callback, another shape) is ignored. The caller checks the loaded log density as before.

_MODEL_FORMAT = 1


def _type_fp(t):
    dtype, shape = getattr(t, "dtype", None), getattr(t, "shape", None)
    return (type(t).__module__, type(t).__qualname__, str(dtype), None if shape is None else list(shape), str(t))


def _value_fp(v, depth: int = 0):
    """Fingerprint of an op property (JSON-like)."""
    from pytensor.graph.op import Op
    from pytensor.graph.type import Type

    if depth > 20:
        raise _Uncacheable("property too deep")
    if v is None or isinstance(v, (bool, int, float, str, bytes)):
        return repr(v)
    if isinstance(v, np.ndarray):
        if v.dtype.hasobject:
            raise _Uncacheable("an object array")
        return ("ndarray", v.dtype.str, list(v.shape), hashlib.sha256(np.ascontiguousarray(v).tobytes()).hexdigest())
    if isinstance(v, np.generic):
        return ("scalar", v.dtype.str, repr(v.item()))
    if isinstance(v, np.dtype):
        return ("dtype", v.str)
    if isinstance(v, (tuple, list)):
        return (type(v).__name__, [_value_fp(x, depth + 1) for x in v])
    if isinstance(v, (set, frozenset)):
        return ("set", sorted(repr(_value_fp(x, depth + 1)) for x in v))
    if isinstance(v, dict) or type(v).__name__ == "frozendict":
        return ("dict", sorted((repr(k), _value_fp(x, depth + 1)) for k, x in v.items()))
    if isinstance(v, slice):
        return ("slice", _value_fp((v.start, v.stop, v.step), depth + 1))
    if isinstance(v, Op):
        return _op_fp(v, depth + 1)
    if isinstance(v, Type):
        return _type_fp(v)
    if isinstance(v, type) or isinstance(v, types.FunctionType | types.BuiltinFunctionType):
        return ("callable", getattr(v, "__module__", None), getattr(v, "__qualname__", repr(v)))
    if hasattr(type(v), "__props__"):  # e.g. scalar types
        return (type(v).__module__, type(v).__qualname__,
                [_value_fp(getattr(v, p), depth + 1) for p in type(v).__props__])
    import enum

    if isinstance(v, enum.Enum):
        return ("enum", type(v).__qualname__, v.name)
    raise _Uncacheable(f"cannot fingerprint a {type(v).__name__} property")


def _op_fp(op, depth: int = 0):
    """An op by what defines its equality in pytensor: its class and ``__props__`` (scalar ops
    without props: their class and output-type rule, as ``ScalarOp.__eq__``)."""
    from pytensor.scalar import basic as ps

    props = getattr(type(op), "__props__", None)
    if props is None:
        # scalar ops compare by class and output-type rule (comparisons also by ``bool``)
        known = {ps.ScalarOp.__eq__: (), ps.LogicalComparison.__eq__: ("bool",),
                 ps.FixedLogicalComparison.__eq__: ("bool",)}
        extra = known.get(type(op).__eq__) if isinstance(op, ps.ScalarOp) else None
        if extra is None:
            raise _Uncacheable(f"op {type(op).__name__} has no __props__")
        return (type(op).__module__, type(op).__qualname__,
                _value_fp(getattr(op, "output_types_preference", None), depth + 1),
                [(a, repr(getattr(op, a, None))) for a in extra])
    return (type(op).__module__, type(op).__qualname__, [(p, _value_fp(getattr(op, p), depth + 1)) for p in props],
            _module_source_hash(type(op).__module__))


_SOURCE_HASHES: dict[str, str] = {}


def _module_source_hash(module: str) -> str:
    """For ops from outside pytensor and PyMC (whose versions are in the key), a hash of the source
    of the module that defines them: their compiled code changes with it, their props need not."""
    if module.split(".")[0] in ("pytensor", "pymc"):
        return ""
    if module not in _SOURCE_HASHES:
        mod = sys.modules.get(module)
        path = getattr(mod, "__file__", None)
        if not path:
            raise _Uncacheable(f"no source for the module of an op: {module}")
        _SOURCE_HASHES[module] = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return _SOURCE_HASHES[module]


def _graph_fp(outputs) -> tuple[list, dict]:
    """Structural fingerprint of the graphs of ``outputs`` and their shared variables by name."""
    from pytensor.compile.sharedvalue import SharedVariable
    from pytensor.graph.basic import Constant
    from pytensor.graph.traversal import toposort

    ids: dict = {}
    parts: list = []
    shared: dict = {}

    def ref(var):
        if var in ids:
            return ids[var]
        if var.owner is not None:  # pragma: no cover - toposort visits owners first
            raise _Uncacheable("graph order")
        if isinstance(var, Constant):
            parts.append(("const", _type_fp(var.type), _value_fp(np.asarray(var.data))))
        elif isinstance(var, SharedVariable):
            value = var.get_value(borrow=True)
            if not var.name or shared.get(var.name, var) is not var:
                raise _Uncacheable(f"shared variable without a unique name ({var.name!r})")
            shared[var.name] = var
            arr = np.asarray(value)
            if arr.dtype.kind in "biu":  # dimension lengths, indices: their values shape the code
                parts.append(("shared", var.name, _type_fp(var.type), _value_fp(arr)))
            elif arr.dtype.kind in "fc":  # data: only the dtype and shape
                parts.append(("shared", var.name, _type_fp(var.type), arr.dtype.str, list(arr.shape)))
            else:
                raise _Uncacheable(f"shared variable {var.name!r} of kind {arr.dtype.kind}")
        else:
            parts.append(("input", var.name, _type_fp(var.type)))
        ids[var] = len(ids)
        return ids[var]

    for node in toposort(outputs):
        ins = [ref(v) for v in node.inputs]
        parts.append(("apply", _op_fp(node.op), ins, [_type_fp(o.type) for o in node.outputs]))
        for o in node.outputs:
            ids[o] = len(ids)
    parts.append(("outputs", [ref(o) for o in outputs]))
    return parts, shared


def _trace_vars(model, var_names):
    """The variables nutpie traces besides the free ones (as ``nutpie.compile_pymc._make_functions``)."""
    joined = [model.rvs_to_values[v].name for v in model.free_RVs]
    remaining = [v for v in model.unobserved_value_vars if v.name not in joined]
    if var_names is not None:
        names = set(var_names)
        remaining = [v for v in remaining if v.name in names]
    return joined, remaining


def model_key(model, var_names=None) -> tuple[str, dict]:
    """(key, shared variables by name) of a PyMC model for nutpie's numba backend; raises
    ``_Uncacheable``."""
    import numba
    import pytensor

    joined, remaining = _trace_vars(model, var_names)
    values = [model.rvs_to_values[v] for v in model.free_RVs]
    graph, shared = _graph_fp([model.logp(), *values, *remaining])
    settings = (pytensor.config.get_config_hash(), pytensor.config.mode, str(pytensor.config.linker),
                pytensor.config.optimizer, pytensor.config.optimizer_excluding, pytensor.config.optimizer_including,
                pytensor.config.optimizer_requiring, bool(pytensor.config.numba__fastmath),
                bool(pytensor.config.numba__cache), numba.config.OPT, numba.config.BOUNDSCHECK)
    parts = (_MODEL_FORMAT, _key_versions(), repr(settings), joined, [v.name for v in remaining],
             None if var_names is None else sorted(var_names), bool(model.check_bounds), graph)
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:40], shared


def _key_versions() -> tuple:
    import llvmlite
    import numba
    import nutpie
    import pymc
    import pytensor
    from numba.core.registry import cpu_target

    return (sys.version, numba.__version__, llvmlite.__version__, nutpie.__version__, pytensor.__version__,
            pymc.__version__, repr(cpu_target.target_context.codegen().magic_tuple()))


def model_entry_path(directory: Path, key: str) -> Path:
    """Where the record of the compiled model with cache ``key`` lives."""
    return directory / f"{key}.model.json"


def save_model(directory: Path | None, key: str, compiled, cfunc_keys: list[str]) -> bool:
    """Record ``compiled`` (a fresh nutpie CompiledPyMCModel) under ``key``; False if it cannot be."""
    import json

    if directory is None or len(cfunc_keys) != 2 or not all(cache_path(directory, k).exists() for k in cfunc_keys):
        return False
    logp_shared = [v.name for v in compiled.logp_func.get_shared()]
    expand_shared = [v.name for v in compiled.expand_func.get_shared()]
    order = [v.name for v in compiled.shared_var_keys]  # the callbacks' user-data layout
    if not all(order) or len(set(order)) != len(order):
        return False
    names, slices, shapes = compiled.shape_info
    entry = {"format": _MODEL_FORMAT, "n_dim": int(compiled.n_dim), "n_expanded": int(compiled.n_expanded),
             "names": list(names), "slices": [[int(s.start), int(s.stop)] for s in slices],
             "shapes": [[int(x) for x in s] for s in shapes],
             "reparameterized_names": list(compiled.reparameterized_names or []),
             "shared_order": order, "logp_shared": logp_shared, "expand_shared": expand_shared,
             "logp_cfunc": cfunc_keys[0], "expand_cfunc": cfunc_keys[1]}
    payload = json.dumps(entry, sort_keys=True).encode()
    path = model_entry_path(directory, key)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_bytes(payload)
    os.replace(tmp, path)
    return True


class _LoadedCFunc:
    """A numba C callback rebuilt from the disk cache (what nutpie uses of ``numba.cfunc``: its
    address; the code library is kept alive with it)."""

    def __init__(self, cres):
        self._library = cres.library
        self.address = self._library.get_pointer_to_function(cres.fndesc.llvm_cfunc_wrapper_name)


def _load_cfunc(directory: Path, key: str):
    from numba.core.compiler_lock import global_compiler_lock
    from numba.core.registry import cpu_target

    if key in _IN_MEMORY:
        _IN_MEMORY[key] = _IN_MEMORY.pop(key)
        return _IN_MEMORY[key]
    with global_compiler_lock:
        cres = _DiskCache(cache_path(directory, key)).load_overload(None, cpu_target.target_context)
    if cres is None:
        return None
    res = _LoadedCFunc(cres)
    _IN_MEMORY[key] = res
    while len(_IN_MEMORY) > _MAX_IN_MEMORY:
        _IN_MEMORY.pop(next(iter(_IN_MEMORY)))
    return res


def load_model(directory: Path | None, key: str, model, shared: dict, var_names=None):
    """nutpie's compiled model rebuilt from the entry ``key`` without pytensor, or None."""
    import json

    from nutpie import compile_pymc as ncp
    from pymc.initial_point import make_initial_point_fn

    if directory is None:
        return None
    try:
        entry = json.loads(model_entry_path(directory, key).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(entry, dict) or entry.get("format") != _MODEL_FORMAT:
        return None
    try:
        order = entry["shared_order"]
        if any(n not in shared for n in order) or not set(entry["logp_shared"] + entry["expand_shared"]) <= set(order):
            return None
        with _LOCK:
            logp_fn = _load_cfunc(directory, entry["logp_cfunc"])
            expand_fn = _load_cfunc(directory, entry["expand_cfunc"])
        if logp_fn is None or expand_fn is None:
            return None
        names, shapes = list(entry["names"]), [tuple(s) for s in entry["shapes"]]
        slices = [slice(a, b) for a, b in entry["slices"]]
        n_free = len(model.free_RVs)
        # the initial points as nutpie makes them (support points, jittered by the seed)
        pymc_ip = ncp._wrap_with_lock(make_initial_point_fn(
            model=model, default_strategy="support_point", jitter_rvs=set(model.free_RVs), return_transformed=True))
        initial_point_fn = ncp._rv_dict_to_flat_array_wrapper(pymc_ip, names=names[:n_free], shapes=shapes[:n_free])
        if len(initial_point_fn(0)) != entry["n_dim"]:  # another size than the one compiled
            return None
        shared_var_keys, shared_data = {}, {}
        for name in order:
            var = shared[name]
            k = uuid.uuid4().hex
            shared_var_keys[var] = k
            shared_data[k] = np.array(var.get_value(), order="C", copy=True)
            shared_data[k].flags.writeable = False
        user_data = ncp.make_user_data(shared_var_keys, shared_data)
        shape_info = (names, slices, shapes)
        dims, coords = ncp._prepare_dims_and_coords(model, shape_info, entry["reparameterized_names"])
        return ncp.CompiledPyMCModel(
            _n_dim=entry["n_dim"], dims=dims, _coords=coords, _shapes={n: tuple(s) for n, s in zip(names, shapes,
                                                                                                   strict=True)},
            compiled_logp_func=logp_fn, compiled_expand_func=expand_fn, initial_point_func=initial_point_fn,
            shared_data=shared_data, shared_var_keys=shared_var_keys, user_data=user_data,
            n_expanded=entry["n_expanded"], shape_info=shape_info, logp_func=None, expand_func=None,
            reparameterized_names=entry["reparameterized_names"])
    except (KeyError, TypeError, ValueError, AttributeError):  # an entry of another layout: compile
        return None


def evict_model(directory: Path | None, key: str) -> None:
    """Forget a compiled model: its entry and the two callbacks it names (in memory and on disk)."""
    import json

    if directory is None:
        return
    path = model_entry_path(directory, key)
    try:
        entry = json.loads(path.read_text())
        evict(directory, [entry["logp_cfunc"], entry["expand_cfunc"]])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    path.unlink(missing_ok=True)


def compile_in_helper(model, var_names=None, timeout: float = 1800.0) -> bool:
    """Compile ``model`` in a new process into the cache; True if that process finished.

    Why: the code numba has just compiled in a process can round differently in the last bits from
    the same code saved and loaded by another process (measured: the log density at one point
    differed in the 15th digit), and the sampler turns that into other draws. So the compile happens
    in a process of its own, and the caller loads the result from the cache exactly as every later
    run does: the first run on a machine gives the same numbers as the next."""
    import subprocess
    import tempfile

    try:
        import cloudpickle

        payload = cloudpickle.dumps((model, var_names))
    except Exception:  # noqa: BLE001 - a model that cannot be sent: the caller keeps its own compile
        return False
    with tempfile.TemporaryDirectory(prefix="ltae-compile-") as tmp:  # private (0700)
        path = Path(tmp) / "model.pkl"
        path.write_bytes(payload)
        try:
            # the same interpreter and import path as this process (a notebook may have extended it)
            env = {**os.environ, "LTAE_COMPILE_HELPER": "1",
                   "PYTHONPATH": os.pathsep.join(p for p in sys.path if p and os.path.isdir(p))}
            p = subprocess.run([sys.executable, "-m", "ltae.models._compile_helper", str(path)], env=env,
                               capture_output=True, timeout=timeout)
        except (OSError, subprocess.SubprocessError):
            return False
    return p.returncode == 0
