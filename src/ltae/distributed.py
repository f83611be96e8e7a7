"""Work that outgrows one process goes to Dask (dask.distributed), never to a home-made pool.

    results = fan_out(fit_one, items, scheduler=None)        # a LocalCluster on this machine
    results = fan_out(fit_one, items, scheduler="tcp://host:8786")   # an existing cluster
    results = fan_out(fit_one, items, scheduler="serial")    # in this process, one after the other

Used for independent fits: the long-term model of each market, prior-sensitivity refits, recovery
studies (``benchmarks``) and scenario sweeps. Each task must be a pure function of its item (seeds
come from the item), so the same seed gives the same numbers serially and on Dask. A task whose
worker dies is run again on another worker (up to ``retries`` times); tasks write nothing
themselves (results come back to the caller, which writes atomically), so a dead worker leaves
nothing half-written.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

SERIAL = "serial"


def _workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def client(scheduler: str | None = None, workers: int | None = None):
    """A dask.distributed Client: to ``scheduler`` (an address) or a new LocalCluster of ``workers``
    single-threaded worker processes (default: the cores, at most 4). The caller closes it."""
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError as e:  # pragma: no cover - the distributed extra is missing
        raise RuntimeError("Dask is not installed: pip install 'ltae[distributed]', or use scheduler='serial'") from e
    if scheduler:
        return Client(scheduler)
    cluster = LocalCluster(n_workers=workers or _workers(), threads_per_worker=1, processes=True,
                           dashboard_address=None, host="127.0.0.1",
                           env={"OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"})
    return Client(cluster)


def fan_out(fn: Callable[[Any], Any], items: Iterable[Any], *, scheduler: str | None = None,
            workers: int | None = None, retries: int = 2, progress: Callable[[int, int], None] | None = None,
            ) -> list:
    """``[fn(item) for item in items]``, in the items' order, on Dask (``scheduler``: None for a
    LocalCluster, an address for an existing cluster) or serially (``"serial"``, or one item)."""
    items = list(items)
    if scheduler == SERIAL or len(items) <= 1:
        out = []
        for k, it in enumerate(items):
            out.append(fn(it))
            if progress:
                progress(k + 1, len(items))
        return out
    from dask.distributed import as_completed

    with client(scheduler, workers) as c:
        futures = c.map(fn, items, retries=retries, pure=False)
        index = {f.key: k for k, f in enumerate(futures)}
        results: list = [None] * len(items)
        for done, f in enumerate(as_completed(futures), start=1):
            results[index[f.key]] = f.result()
            if progress:
                progress(done, len(items))
        if scheduler is None:
            c.cluster.close()
        return results
