"""Refresh a run with new weeks: the previous posterior of the response curves becomes the new prior.

``ltae refresh --run PREV --data NEW --out NEXT`` (or :func:`refresh`):

1. the new data must contain the previous run's weeks and add weeks after them. Every previous week
   is compared with the new data (target, spend, controls, brand metrics): changed history is an error
   that lists the changes (``--accept-history-changes`` fits anyway and records them);
2. the whole series is fitted again, with the previous posterior of each channel's response curve
   (adstock retention, Hill shape, half-saturation) as its prior, moment-matched (Beta, Gamma) and
   **widened**: each prior's standard deviation is ``widen`` (default 2) times the posterior's, so the
   prior carries a quarter of the information the previous weeks gave (the weeks are in the likelihood
   again, so a prior as narrow as the posterior would count them twice). The half-saturation point is
   converted to the new data's median spend. The linear effects (ROIs with their group prior,
   controls, seasonality) keep their default priors and are integrated out as always;
3. the sampler starts from the previous posterior means (warm start);
4. the new run's ``refresh.json`` (also in ``diagnostics.json`` and the report) compares each channel's
   short-, long- and total ROI before and after, with the move in units of the previous interval's
   width.

Why the curves: a channel's ROI rests mostly on the shape of its response curve (the level absorbs an
always-on channel's mean effect), and that shape is what swings between refits (Robyn #890, #960).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ltae.data.validate import DataValidationError

DEFAULT_WIDEN = 2.0


def history_changes(prev, new, rtol: float = 1e-6, atol: float = 1e-6) -> pd.DataFrame:
    """Cells of ``prev`` (an MMMDataset) that ``new`` changes: rows (Date, column, previous, new).
    Raises DataValidationError when ``new`` lacks some of ``prev``'s weeks or columns."""
    a, b = prev.to_frame().set_index("Date"), new.to_frame().set_index("Date")
    missing = a.index.difference(b.index)
    if len(missing):
        raise DataValidationError(f"the new data lack {len(missing)} of the previous run's weeks "
                                  f"(first {missing[0].date()})", file=str(new.source),
                                  hint="a refresh appends weeks: give the whole history plus the new weeks")
    cols = [c for c in a.columns if c not in b.columns]
    if cols:
        raise DataValidationError(f"the new data lack the previous run's columns {', '.join(map(str, cols))}",
                                  file=str(new.source), hint="keep the same channels, controls and brand metrics")
    old, upd = a, b.loc[a.index, a.columns]
    diff = ~np.isclose(old.to_numpy(float), upd.to_numpy(float), rtol=rtol, atol=atol, equal_nan=True)
    rows = [{"Date": old.index[i].date().isoformat(), "column": old.columns[j], "previous": float(old.iat[i, j]),
             "new": float(upd.iat[i, j])} for i, j in zip(*np.nonzero(diff), strict=True)]
    return pd.DataFrame(rows, columns=["Date", "column", "previous", "new"])


def _beta(m: np.ndarray, sd: np.ndarray) -> list[tuple[float, float]]:
    v = np.minimum(sd**2, 0.95 * m * (1 - m))  # a Beta's variance is below m (1 - m)
    k = m * (1 - m) / v - 1
    return [(float(x), float(y)) for x, y in zip(m * k, (1 - m) * k, strict=True)]


def _gamma(m: np.ndarray, sd: np.ndarray) -> list[tuple[float, float]]:
    v = sd**2
    return [(float(x), float(y)) for x, y in zip(m**2 / v, m / v, strict=True)]


def refreshed_priors(prev_mmm, new_mmm, widen: float = DEFAULT_WIDEN) -> tuple[dict, dict]:
    """(MMMPriors updates, initial values) from a fitted one-market model ``prev_mmm`` for the model of
    the new data ``new_mmm`` (not fitted): moment-matched, standard deviations times ``widen``."""
    alpha, kappa = prev_mmm.draws("adstock_alpha"), prev_mmm.draws("hill_kappa")
    # half-saturation in units of each channel's median spend: convert to the new data's medians
    lam = prev_mmm.draws("hill_lambda") * prev_mmm.spend_scale[None, :] / new_mmm.spend_scale[None, :]
    upd = {"alpha_ab": _beta(alpha.mean(0), widen * alpha.std(0)),
           "kappa_sr": _gamma(kappa.mean(0), widen * kappa.std(0)),
           "lambda_sr": _gamma(lam.mean(0), widen * lam.std(0))}
    init = {"adstock_alpha": alpha.mean(0).tolist(), "hill_kappa": kappa.mean(0).tolist(),
            "hill_lambda": lam.mean(0).tolist()}
    from ltae.models.sampling import posterior_dataset

    post = posterior_dataset(prev_mmm.idata)
    for name in ("noise_radius2", "noise_angle", "group_sigma", "sigma", "sigma_level"):
        if name in post:
            v = prev_mmm.draws(name).mean(0)
            init[name] = v.tolist() if np.ndim(v) else float(v)
    return upd, init


def comparison(before: pd.DataFrame, after: pd.DataFrame) -> pd.DataFrame:
    """Per channel and term: the previous and the new ROI (mean and interval) and the move of the mean
    in units of the previous interval's width (``move_in_widths``)."""
    rows = []
    a = before.set_index("channel")
    b = after.set_index("channel")
    for ch in b.index:
        for term in ("short_term", "long_term", "total"):
            cols = [f"{term}_roi_{s}" for s in ("mean", "lower", "upper")]
            if ch not in a.index or not set(cols) <= set(a.columns):
                continue
            pm, pl, pu = (float(a.at[ch, c]) for c in cols)
            nm, nl, nu = (float(b.at[ch, c]) for c in cols)
            width = pu - pl
            rows.append({"channel": ch, "term": term, "previous_mean": pm, "previous_lower": pl,
                         "previous_upper": pu, "new_mean": nm, "new_lower": nl, "new_upper": nu,
                         "move": nm - pm, "move_in_widths": abs(nm - pm) / width if width > 0 else None})
    return pd.DataFrame(rows)


def refresh(run_dir, data, out, *, widen: float = DEFAULT_WIDEN, accept_history_changes: bool = False,
            overrides: dict | None = None, progress=None, store_path=None):
    """Refresh the run in ``run_dir`` with ``data`` (the previous weeks plus new ones) into ``out``
    (see the module docstring). ``overrides``: further configuration (e.g. sampling draws)."""
    from ltae import pipeline
    from ltae.config import RunConfig, merge_overrides
    from ltae.data import load_dataset
    from ltae.models.mmm import ShortTermMMM
    from ltae.store.runs import open_run

    if not widen >= 1.0:
        raise DataValidationError(f"widen must be at least 1 (got {widen})", hint="2 keeps a quarter of the "
                                  "previous weeks' information in the prior")
    prev = open_run(run_dir)
    if Path(out).resolve() == prev.path.resolve():
        raise DataValidationError("the refresh must go into a new folder", file=str(out),
                                  hint="pass another --out; the previous run stays as it is")
    pcfg = prev.config
    prev_ds = prev.dataset
    if hasattr(prev_ds, "markets"):
        raise DataValidationError("refresh works on one-market runs; this run has several markets",
                                  file=str(prev.path), hint="re-run `ltae run` on the new data")
    roles = pcfg.data.roles.model_copy(update={"min_weeks": 1})
    new_ds = load_dataset(data, roles)
    changes = history_changes(prev_ds, new_ds)
    new_weeks = int((new_ds.dates > prev_ds.dates[-1]).sum())
    if new_weeks == 0:
        raise DataValidationError("the new data add no week after the previous run's last week "
                                  f"({prev_ds.dates[-1].date()})", file=str(data), hint="nothing to refresh")
    if len(changes) and not accept_history_changes:
        first = changes.iloc[0]
        raise DataValidationError(
            f"the new data change {len(changes)} value(s) of the previous run's weeks (first: {first['column']} "
            f"on {first['Date']}: {first['previous']:g} -> {first['new']:g})", file=str(data),
            hint="check the history; --accept-history-changes refreshes anyway and records the changes")
    prev_mmm = ShortTermMMM.from_dataset(prev_ds, pcfg.channel_groups, pcfg.mmm_priors)
    prev_mmm.idata = prev.posterior("short_term")
    new_mmm = ShortTermMMM.from_dataset(new_ds, pcfg.channel_groups, pcfg.mmm_priors)
    upd, init = refreshed_priors(prev_mmm, new_mmm, widen)
    base = pcfg.model_dump(mode="json")
    base["data"]["path"] = str(data)
    base["mmm_priors"].update(upd)
    base["sampling"]["initial_values"] = init
    cfg = RunConfig.model_validate(merge_overrides(base, overrides or {}))
    info = {"previous_run": prev.run_id, "previous_out": str(prev.path), "new_weeks": new_weeks,
            "previous_weeks": int(prev_ds.n_weeks), "widen": widen, "history_changes": changes.to_dict("records"),
            "priors": upd, "roi": prev.roi()}
    return pipeline.run(data, out, cfg, progress=progress, store_path=store_path, refresh_of=info)
