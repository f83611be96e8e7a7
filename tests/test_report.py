"""Report layer: PNG figures and the self-contained HTML report, on fake but shape-correct results."""

from __future__ import annotations

import base64
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from ltae.report import make_figures, write_report
from ltae.results import LongTermResult, RunResult, ShortTermResult

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
ALL_FIGURES = {"irf", "long_term_roi", "roi_comparison", "contributions", "ppc", "budget", "adstock", "saturation"}


def _band(rng, mean, scale):
    w = np.abs(rng.normal(scale, scale / 4, np.shape(mean)))
    return mean - w, mean + w


def fake_result(channels=("TV", "Rádio <&> \"print\"", "Search $5 $"), brand=("Awareness",), T=52, S=200,
                H=12, with_budget=True, seed=0) -> RunResult:
    rng = np.random.default_rng(seed)
    channels = list(channels)
    C, n = len(channels), 1 + len(brand)
    dates = pd.date_range("2023-01-02", periods=T, freq="W-MON")
    spend = rng.uniform(1_000, 20_000, (T, C))
    contrib = spend * rng.uniform(0.5, 1.5, C)
    base = 200_000 + np.cumsum(rng.normal(0, 2_000, T))
    fitted = base + contrib.sum(1)
    sales = fitted + rng.normal(0, 5_000, T)
    roi_st = rng.gamma(4, 0.3, (S, C))
    roi_lt = rng.normal(0.4, 0.5, (S, C))
    clo, chi = _band(rng, contrib, 500)
    blo, bhi = _band(rng, base, 3_000)
    flo, fhi = _band(rng, fitted, 10_000)
    ms = np.linspace(0, 2, 21)
    curve = contrib.sum(0)[None, :] * (1 - np.exp(-1.5 * ms[:, None])) / (1 - np.exp(-1.5))
    short = ShortTermResult(
        channels=channels, dates=dates, sales=sales, spend=spend, roi_draws=roi_st,
        marginal_roi_draws=roi_st * 0.7, contributions_mean=contrib, contributions_lower=clo,
        contributions_upper=chi, base_sales_mean=base, base_sales_lower=blo, base_sales_upper=bhi,
        fitted_mean=fitted, fitted_lower=flo, fitted_upper=fhi,
        fit_metrics={"mape": 2.3, "r2": 0.91, "coverage": 0.94, "n": T},
        convergence={"max_rhat": 1.004, "min_ess_bulk": 1500.0, "divergences": 0, "divergence_rate": 0.0},
        adstock_alpha_draws=rng.beta(4, 4, (S, C)), l_max=8,
        response_curves={"multipliers": ms, "mean": curve, "lower": curve * 0.8, "upper": curve * 1.2},
        fit_info={"sampler": "nutpie", "wall_s": 12.5},
    )
    h = np.arange(H)[:, None, None]
    irf = 0.3 * np.exp(-h / 4) * rng.uniform(0.5, 1.5, (1, n, C))
    irf[:, 1:, :] *= 1e-3  # brand metrics: points per currency unit
    spread = 0.2 * np.abs(irf).max(axis=0, keepdims=True)  # bands cross zero in the tail
    ilo, ihi = irf * 0.6 - spread, irf * 1.4 + spread
    long = LongTermResult(
        endog_names=["base_sales", *brand], channels=channels, horizon=H, irf_mean=irf, irf_lower=ilo,
        irf_upper=ihi, cumulative_mean=irf.cumsum(0), cumulative_lower=ilo.cumsum(0),
        cumulative_upper=ihi.cumsum(0), roi_draws=roi_lt, n_unstable=3, n_draws=S,
        convergence={"max_rhat": 1.02, "min_ess_bulk": 600.0, "divergences": 4, "divergence_rate": 0.02},
        replicates=2, fit_info={"sampler": "nutpie", "wall_s": 30.1},
    )
    total = roi_st + roi_lt
    rows = []
    for i, ch in enumerate(channels):
        row = {"channel": ch, "spend": float(spend[:, i].sum())}
        for term, d in (("short_term", roi_st), ("long_term", roi_lt), ("total", total)):
            row |= {f"{term}_roi_mean": d[:, i].mean(), f"{term}_roi_lower": np.quantile(d[:, i], 0.025),
                    f"{term}_roi_upper": np.quantile(d[:, i], 0.975)}
        rows.append(row)
    roi = pd.DataFrame(rows)
    budget = None
    if with_budget:
        cur = spend.sum(0)
        opt = cur * rng.uniform(0.5, 1.5, C)
        opt *= cur.sum() / opt.sum()
        ret = opt * total.mean(0)
        budget = pd.DataFrame({"channel": channels, "current_spend": cur, "optimal_spend": opt,
                               "change_pct": (opt / cur - 1) * 100, "expected_return_mean": ret,
                               "expected_return_lower": ret * 0.7, "expected_return_upper": ret * 1.3})
        budget.attrs.update({"success": True, "uplift_mean": 12_345.0, "uplift_lower": -1_000.0,
                             "uplift_upper": 25_000.0})
    checklist = [
        {"check": "R-hat", "value": 1.02, "threshold": "< 1.01", "status": "warn", "action": "Increase draws."},
        {"check": "ESS (bulk)", "value": 600.0, "threshold": "> 1000", "status": "fail",
         "action": "Increase draws <now>."},
        {"check": "MAPE", "value": 2.3, "threshold": "< 15%", "status": "pass", "action": "Add variables."},
        {"check": "Prior sensitivity", "value": None, "threshold": "< 20% change", "status": "not run",
         "action": "Run with --prior-sensitivity."},
    ]
    diagnostics = {
        "short_term": {"max_rhat": 1.004, "min_ess_bulk": 1500.0, "divergences": 0, "sampler": "nutpie"},
        "long_term": {"max_rhat": 1.02, "min_ess_bulk": 600.0, "divergences": 4, "sampler": "nutpie",
                      "unstable_draws": 3},
        "fit": short.fit_metrics, "holdout": None, "prior_sensitivity": None,
        "budget": dict(budget.attrs) if budget is not None else {},
    }
    config = {"data": {"path": "data/<sales>.csv", "channels": channels}, "sampling": {"draws": 100, "chains": 2},
              "horizon": H, "credible_interval": 0.95, "budget": None}
    quality = {"n_weeks": T, "start": "2023-01-02", "end": str(dates[-1].date()), "vif_threshold": 10.0,
               "vif": [{"name": ch, "role": "channel", "vif": 1.5 + i, "high": False, "note": ""}
                       for i, ch in enumerate(channels)],
               "adf": [{"name": "sales", "role": "target", "statistic": -1.2, "p_value": 0.67, "lags": 2,
                        "stationary": False, "note": ""}],
               "warnings": ["sales looks non-stationary"]}
    dataset_summary = {"source": "fake.csv", "n_weeks": T, "start": "2023-01-02", "channels": channels,
                       "brand": list(brand), "notices": []}
    return RunResult(run_id="20240101T120000Z-abcdef12", config=config, dataset_summary=dataset_summary,
                     quality=quality, short=short, long=long, roi=roi, total_roi_draws=total,
                     checklist=checklist, budget=budget, timings={"total_s": 99.0}, diagnostics=diagnostics)


def _no_temporaries(folder: Path) -> None:
    leftovers = [p for p in folder.rglob("*") if p.name.startswith(".") or p.name.endswith(".tmp")]
    assert leftovers == []


def _check_pngs(out: Path, figs: dict) -> None:
    for name, rel in figs.items():
        assert not Path(rel).is_absolute() and rel == f"figures/{name}.png"
        data = (out / rel).read_bytes()
        assert data[:8] == PNG_MAGIC, name


def test_three_channels_two_series(tmp_path):
    res = fake_result()
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # a skipped figure is a failure here
        figs = make_figures(res, tmp_path)
    assert set(figs) == ALL_FIGURES
    _check_pngs(tmp_path, figs)

    html_path = write_report(res, figs, tmp_path / "report.html")
    assert html_path == tmp_path / "report.html"
    html = html_path.read_text(encoding="utf-8")
    # every figure embedded as a data URI, byte for byte
    for rel in figs.values():
        b64 = base64.b64encode((tmp_path / rel).read_bytes()).decode("ascii")
        assert f"data:image/png;base64,{b64}" in html
    # self-contained: no external resources or scripts
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", html, re.I)
    assert "<script" not in html.lower()
    # checklist statuses and actions
    for status in ("pass", "warn", "fail", "not run"):
        assert f'class="badge badge-{status.replace(" ", "-")}"' in html
    assert "Increase draws &lt;now&gt;." in html
    # channel names, escaped
    assert "TV" in html
    assert "Rádio &lt;&amp;&gt; &quot;print&quot;" in html
    assert "Rádio <&>" not in html
    assert "Search $5 $" in html
    assert "data/&lt;sales&gt;.csv" in html and "<sales>" not in html
    assert res.run_id in html
    # key sections
    for heading in ("Executive summary", "Validation checklist", "Budget", "Diagnostics", "Data", "Settings"):
        assert heading in html
    assert "1.004" in html  # diagnostics R-hat
    _no_temporaries(tmp_path)


def test_one_channel_no_brand_no_budget(tmp_path):
    res = fake_result(channels=["Online"], brand=(), with_budget=False, seed=1)
    res.quality = {}  # missing keys must not break the report
    res.dataset_summary = {}
    res.diagnostics = {}
    res.out_dir = str(tmp_path)  # report written elsewhere: figures are found via result.out_dir
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        figs = make_figures(res, tmp_path)
    assert set(figs) == ALL_FIGURES - {"budget"}
    _check_pngs(tmp_path, figs)
    html = write_report(res, figs, tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    for rel in figs.values():
        assert base64.b64encode((tmp_path / rel).read_bytes()).decode("ascii") in html
    assert "Online" in html
    assert "No budget optimisation" in html
    _no_temporaries(tmp_path)


def test_many_channels_and_missing_figure(tmp_path):
    chans = [f"ch{i:02d}" for i in range(20)]
    res = fake_result(channels=chans, brand=("Awareness", "Consideration"), T=30, S=50, H=6, seed=2)
    res.roi.loc[0, ["total_roi_mean", "total_roi_lower", "total_roi_upper"]] = np.nan
    figs = make_figures(res, tmp_path)
    assert set(figs) == ALL_FIGURES
    figs["missing"] = "figures/missing.png"  # a figure file that is gone is reported, not fatal
    html = write_report(res, figs, tmp_path / "report.html").read_text(encoding="utf-8")
    assert all(c in html for c in chans)
    assert "figure not available" in html
    _no_temporaries(tmp_path)
