"""Loading data of several markets (a benchmark, not a test): ``load_dataset`` wall time and peak RSS.

``python -m benchmarks.panel_load [--repeats 3] [--out FILE] [--cases 20x156x4,40x156x5]``

Each case ``MxTxC`` (markets x weeks x channels) is generated with ``ltae.data.synthetic_geo`` and
written twice: as the five CSV files with a ``Geo`` column (``save_geo``) and as one CSV in
Meridian's geo layout (``geo, time, *_impression, *_control, *_spend, conversions,
revenue_per_conversion, population``). The wall time of ``load_dataset`` (validation of every market
included) is the median of ``--repeats`` loads. Writes JSON to benchmarks/results/panel_load.json.
Timings from a shared machine are not comparable with others: run it on the machine you report.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def _meridian(data, path: Path) -> None:
    from ltae.data.synthetic_geo import meridian_frame

    meridian_frame(data).to_csv(path)


def _time(path: Path, repeats: int) -> dict:
    from ltae.data import load_dataset

    walls = []
    for _ in range(repeats):
        t = time.perf_counter()
        p = load_dataset(path)
        walls.append(time.perf_counter() - t)
    return {"wall_s": statistics.median(walls), "walls_s": walls, "markets": p.n_markets, "weeks": p.n_weeks,
            "channels": len(p.channels)}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--cases", default="20x156x4,40x156x5", help="comma-separated MARKETSxWEEKSxCHANNELS")
    ap.add_argument("--out", type=Path, default=RESULTS / "panel_load.json")
    args = ap.parse_args(argv)
    from ltae.data.synthetic_geo import generate_geo, save_geo

    out = {"machine": platform.node(), "python": platform.python_version(), "cases": {}}
    channels = ["Content", "Events", "Google", "LinkedIn", "TV", "Radio"]
    with tempfile.TemporaryDirectory() as tmp:
        for case in args.cases.split(","):
            m, t, c = (int(v) for v in case.lower().split("x"))
            data = generate_geo(n_markets=m, n_weeks=t, channels=channels[:c], seed=1)
            folder = save_geo(data, Path(tmp) / f"{case}_folder")
            _meridian(data, Path(tmp) / f"{case}_meridian.csv")
            res = {"five_csv": _time(folder, args.repeats),
                   "meridian_csv": _time(Path(tmp) / f"{case}_meridian.csv", args.repeats)}
            out["cases"][case] = res
            print(f"{case:12s} five CSVs {res['five_csv']['wall_s']:6.2f}s   Meridian CSV "
                  f"{res['meridian_csv']['wall_s']:6.2f}s", flush=True)
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2))
    print(f"peak RSS {out['peak_rss_mb']:.0f} MB; wrote {args.out}")
    return out


if __name__ == "__main__":
    main()
