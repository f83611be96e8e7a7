"""The validation checklist at each boundary: inputs just either side of every threshold."""

from __future__ import annotations

from types import SimpleNamespace

import pandas as pd
import pytest

from ltae.pipeline import checklist, coverage_band

GOOD_CONV = {"max_rhat": 1.001, "min_ess_bulk": 2000.0, "divergence_rate": 0.0}
GOOD_FIT = {"one_step_mape": 5.0, "one_step_r2": 0.95, "one_step_coverage": 0.95}


def run_checks(short_conv=None, long_conv=None, fit=None, sampler="nutpie", roi=(2.0, 3.0), unstable=0,
               n_draws=1000, sensitivity=None, ci=0.95) -> dict[str, dict]:
    short = SimpleNamespace(convergence={**GOOD_CONV, **(short_conv or {})}, fit_metrics={**GOOD_FIT, **(fit or {})},
                            fit_info={"sampler": sampler})
    long = SimpleNamespace(convergence={**GOOD_CONV, **(long_conv or {})}, n_unstable=unstable, n_draws=n_draws,
                           status="estimated")  # a long-term ROI the model supports
    table = pd.DataFrame({"channel": [f"c{i}" for i in range(len(roi))], "total_roi_mean": list(roi)})
    sens = None if sensitivity is None else {"max_relative_change": sensitivity}
    return {c["check"]: c for c in checklist(short, long, table, sens, ci)}


def status(name_start: str, **kw) -> str:
    checks = run_checks(**kw)
    (hit,) = [c for n, c in checks.items() if n.startswith(name_start)]
    return hit["status"]


def test_all_good_passes():
    checks = run_checks(sensitivity=0.05)
    assert {c["status"] for c in checks.values()} == {"pass"}


@pytest.mark.parametrize("value, expected", [(1.0099, "pass"), (1.0101, "warn"), (1.0499, "warn"), (1.0501, "fail")])
def test_rhat(value, expected):
    assert status("R-hat", short_conv={"max_rhat": value}) == expected
    assert status("R-hat", long_conv={"max_rhat": value}) == expected  # the worse of the two models


@pytest.mark.parametrize("value, expected", [(1001, "pass"), (999, "warn"), (401, "warn"), (399, "fail")])
def test_ess(value, expected):
    assert status("ESS", short_conv={"min_ess_bulk": value}) == expected
    assert status("ESS", long_conv={"min_ess_bulk": value}) == expected


@pytest.mark.parametrize("value, expected", [(0.0099, "pass"), (0.0101, "warn"), (0.0499, "warn"), (0.0501, "fail")])
def test_divergences(value, expected):
    assert status("Divergences", short_conv={"divergence_rate": value}) == expected


@pytest.mark.parametrize("value, expected", [(14.99, "pass"), (15.01, "fail")])
def test_mape(value, expected):
    assert status("MAPE", fit={"one_step_mape": value}) == expected


@pytest.mark.parametrize("value, expected", [(0.801, "pass"), (0.799, "warn"), (0.601, "warn"), (0.599, "fail")])
def test_r2(value, expected):
    assert status("R²", fit={"one_step_r2": value}) == expected


@pytest.mark.parametrize("value, expected", [
    (0.849, "fail"), (0.851, "warn"), (0.899, "warn"), (0.901, "pass"), (0.979, "pass"), (0.981, "warn"),
    (0.994, "warn"), (0.996, "fail")])
def test_coverage_of_a_95_interval(value, expected):
    assert status("95% interval coverage", fit={"one_step_coverage": value}) == expected


@pytest.mark.parametrize("value, expected", [
    (0.699, "fail"), (0.701, "warn"), (0.749, "warn"), (0.751, "pass"), (0.829, "pass"), (0.831, "warn"),
    (0.844, "warn"), (0.846, "fail")])
def test_coverage_band_follows_the_interval_level(value, expected):
    """An 80% interval: pass 75-83%, warn 70-84.5% (the 95% band shifted); name and threshold say so."""
    checks = run_checks(fit={"one_step_coverage": value}, ci=0.8)
    (hit,) = [c for n, c in checks.items() if "coverage" in n]
    assert hit["check"].startswith("80% interval coverage") and hit["threshold"] == "75-83%"
    assert hit["status"] == expected


def test_coverage_band_is_capped_at_100_percent():
    (lo, hi), (wlo, whi) = coverage_band(0.99)
    assert (lo, hi, wlo, whi) == (0.94, 1.0, 0.89, 1.0)


@pytest.mark.parametrize("value, expected", [(0.199, "pass"), (0.201, "warn"), (0.399, "warn"), (0.401, "fail")])
def test_prior_sensitivity(value, expected):
    assert status("Prior sensitivity", sensitivity=value) == expected


def test_prior_sensitivity_not_run():
    assert status("Prior sensitivity") == "not run"


@pytest.mark.parametrize("roi, expected", [((0.01, 9.99), "pass"), ((0.0, 2.0), "warn"), ((2.0, 10.0), "warn"),
                                           ((-1.0, 50.0), "warn")])
def test_business_logic(roi, expected):
    checks = run_checks(roi=roi)
    hit = checks["Business logic"]
    assert hit["status"] == expected
    assert hit["value"] == sum(1 for r in roi if not 0 < r < 10)
    if expected == "warn":  # the action names the channels outside the range
        assert all(f"c{i}" in hit["action"] for i, r in enumerate(roi) if not 0 < r < 10)


@pytest.mark.parametrize("unstable, expected", [(49, "pass"), (51, "warn"), (199, "warn"), (201, "fail")])
def test_bvar_stability(unstable, expected):
    assert status("BVAR stability", unstable=unstable, n_draws=1000) == expected


def test_advi_has_no_mcmc_diagnostics():
    checks = run_checks(sampler="advi", short_conv={"max_rhat": float("nan"), "min_ess_bulk": 0.0})
    for name in ("R-hat", "ESS (bulk)", "Divergences"):
        assert checks[name]["status"] == "not applicable"
    assert checks["MAPE (one week ahead)"]["status"] == "pass"
