"""One pydantic configuration for a run; loadable from TOML or YAML; every CLI option maps to it.

Every configuration error is reported before any fit, as :class:`ConfigError` (a
:class:`~ltae.data.validate.DataValidationError`: the CLI exits 2 with one message): syntax errors
with the file name and line (:func:`load_config`), every wrong key, type or value of a file at once
with the file name and the key (:func:`build_config`), and the settings that depend on the data
(``holdout_weeks``, ``backtest_folds``, ``channel_groups``) once the data are loaded (:func:`check_against_data`).
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ltae.data.roles import DataRoles
from ltae.data.validate import DataValidationError
from ltae.models.bvar import BVAR_SAMPLERS, BVARPriors
from ltae.models.mmm import MMMPriors
from ltae.models.sampling import SAMPLERS


class DataConfig(DataRoles):
    """``[data]``: where the data are (``path``) and the column roles (:class:`~ltae.data.roles.DataRoles`)."""

    path: str = ""

    @property
    def roles(self) -> DataRoles:
        """The roles alone, as :func:`ltae.data.load_dataset` takes them."""
        return DataRoles.model_validate(self.model_dump(exclude={"path"}))


class SamplingConfig(BaseModel):
    """``[sampling]``: the sampler of the short-term model (``nutpie``, ``nutpie_jax``, ``pymc``,
    ``numpyro``, ``blackjax``, ``advi``), draws, tuning steps and chains, target acceptance, the seed,
    and the long-term model's sampler (``bvar_sampler``: ``collapsed`` or any of the others)."""
    model_config = ConfigDict(extra="forbid")
    sampler: str = "nutpie"
    draws: int = Field(1000, ge=10)
    # 500: nutpie's adaptation settles well before; on 20 generated data sets (208 x 4, seeds
    # 100-109 and 200-209) max R-hat 1.006, min bulk ESS 1030, at most 2 divergences in 4000 draws,
    # and about 4 s faster than 1000 (benchmarks/results/recovery_eval_tune500.json)
    tune: int = Field(500, ge=10)
    chains: int = Field(4, ge=1)
    target_accept: float = Field(0.9, gt=0.5, lt=1.0)
    seed: int = 42
    # the long-term model's sampler: "collapsed" (coefficients integrated out exactly, no compile)
    # or any NUTS/ADVI backend above
    bvar_sampler: str = "collapsed"
    # warm start of the short-term sampler: {free variable: value} (a refresh sets the previous posterior's
    # means); None: the sampler's own starting point
    initial_values: dict[str, list[float] | float] | None = None

    @field_validator("sampler")
    @classmethod
    def _sampler(cls, v: str) -> str:
        if v not in SAMPLERS:
            raise ValueError(f"sampler must be one of {', '.join(SAMPLERS)}")
        return v

    @field_validator("bvar_sampler")
    @classmethod
    def _bvar_sampler(cls, v: str) -> str:
        if v not in BVAR_SAMPLERS:
            raise ValueError(f"bvar_sampler must be one of {', '.join(BVAR_SAMPLERS)}")
        return v


# evaluation seeds 100-109 of both generators (ltae's and synthetic_funnel's), confirmed on held-out
# seeds 200-209: see docs/method.md "2. Long term" and benchmarks/results/recovery_*.json
PIPELINE_BVAR = {"structure": "chain", "direct_spend_effect": False, "carryover": [0.0, 0.2, 0.4, 0.6, 0.8]}


class MlflowConfig(BaseModel):
    """Log the finished run to an MLflow tracking server and register it as a model version
    (``ltae run --mlflow``; needs the ``registry`` extra). Not part of any step key."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool = False
    # None: $MLFLOW_TRACKING_URI, else a local SQLite store in ltae's data folder
    # (see ltae.store.registry.default_tracking_uri)
    tracking_uri: str | None = None
    experiment: str = Field("ltae", min_length=1)
    model_name: str = Field("ltae", min_length=1)


class RunConfig(BaseModel):
    """Every setting of a run (a TOML/YAML file's top level; CLI options override it). See
    docs/configuration.md for each key, its default and its unit."""
    model_config = ConfigDict(extra="forbid")
    data: DataConfig = DataConfig()
    sampling: SamplingConfig = SamplingConfig()
    channel_groups: dict[str, list[str]] | None = None
    mmm_priors: MMMPriors = MMMPriors()
    # the pipeline's long-term model: the funnel chain (spend -> first brand metric -> ... -> base
    # sales, no direct spend effect on base sales) with the brand carry-over of spend sampled over a
    # grid; the spec's unrestricted VAR is `bvar_priors = {structure = "var", direct_spend_effect =
    # true, carryover = [0.0]}` (see docs/method.md, "2. Long term")
    bvar_priors: BVARPriors = Field(default_factory=lambda: BVARPriors(**PIPELINE_BVAR))
    horizon: int = Field(24, ge=1, le=260)
    replicates: int = Field(4, ge=1, le=64)  # base-sales draws carried into the BVAR
    bvar_seasonality: bool = True
    # the MMM's controls (standardised) also enter the BVAR as exogenous inputs: base sales carry
    # their effects, and random-walk controls (GDP, confidence...) otherwise look like a unit root in
    # base sales. Demo data (seed 42): explosive draws 11.6% -> 0.4%. Seeds 100-109: long-term median
    # relative error 0.62 -> 0.43, but coverage 0.975 -> 0.85 (contemporaneous controls only, while
    # lagged base sales carry lagged control effects); with 2 lags of controls: explosive 0.5%,
    # long-term error 0.41, coverage 0.875, total coverage 0.95. Off by default
    # (benchmarks/results/recovery_bvar_controls_*.json)
    bvar_controls: bool = False
    bvar_controls_lags: int = Field(0, ge=0, le=8)  # with bvar_controls: also the controls of 1..n weeks before
    # the BVAR's sales series is base sales net of the short-term model's control and seasonality
    # effects (draw by draw), i.e. the level that the brand can move
    bvar_net_of_controls: bool = False
    budget: float | None = None  # currency over the modelled window; default: current total
    budget_bounds: tuple[float, float] = (0.5, 1.5)
    risk_quantile: float | None = None
    prior_sensitivity: bool = False
    # experiments: a CSV of lift tests (ltae.analysis.calibration: channel, start, end, spend_change,
    # lift, lift_se[, measured_until, spread, name]) that enter the short-term model's likelihood; a
    # relative path is relative to the working directory
    lift_tests: str | None = None
    # with lift tests: also fit the short-term model without them, to say how far the sales data alone
    # are from each test (the checklist's "Lift tests" row; without it the check is lenient)
    lift_tests_refit: bool = True
    # rolling-origin backtest: K refits of the short-term model on the first N - k * 4 weeks
    # (k = 1..K), each forecasting the next 4 weeks with the actual spend and controls; the folds run
    # where `scheduler` says
    backtest_folds: int = Field(0, ge=0, le=52)
    holdout_weeks: int = Field(0, ge=0)
    credible_interval: float = 0.95
    # where independent fits run (each market's long-term model, ...): None = a Dask LocalCluster on
    # this machine, "serial" = in this process, or a Dask scheduler address ("tcp://host:8786")
    scheduler: str | None = None
    mlflow: MlflowConfig = MlflowConfig()

    @field_validator("bvar_priors", mode="before")
    @classmethod
    def _pipeline_bvar(cls, v):
        """Keys a file leaves out take the pipeline's long-term defaults, not the spec's."""
        return {**PIPELINE_BVAR, **v} if isinstance(v, dict) else v

    @field_validator("credible_interval")
    @classmethod
    def _share(cls, v: float) -> float:
        if not 0 < v < 1:
            hint = f" (for {v:g}% use {v / 100:g})" if 1 < v < 100 else ""
            raise ValueError(f"must be between 0 and 1, exclusive{hint}")
        return v

    @field_validator("risk_quantile")
    @classmethod
    def _quantile(cls, v: float | None) -> float | None:
        if v is not None and not 0 < v < 1:
            hint = f" (for the {v:g}% quantile use {v / 100:g})" if 1 < v < 100 else ""
            raise ValueError(f"must be between 0 and 1, exclusive{hint}")
        return v

    @field_validator("lift_tests")
    @classmethod
    def _lift_tests(cls, v: str | None) -> str | None:
        return None if v is None or not str(v).strip() else str(v)

    @field_validator("scheduler")
    @classmethod
    def _scheduler(cls, v: str | None) -> str | None:
        if v is not None and v.strip() != "serial" and "://" not in v:
            raise ValueError('must be "serial" or a Dask scheduler address such as "tcp://host:8786" (leave it out '
                             "for a LocalCluster on this machine)")
        return None if v is None else v.strip()

    @field_validator("budget")
    @classmethod
    def _budget(cls, v: float | None) -> float | None:
        if v is not None and not v > 0:
            raise ValueError("must be a positive amount of currency")
        return v

    @field_validator("budget_bounds")
    @classmethod
    def _bounds(cls, v: tuple[float, float]) -> tuple[float, float]:
        check_bounds(*v)
        return v

    def step_key(self, step: str, data_hash: str, upstream: str | None = None, lift_tests: str | None = None) -> str:
        """Hash of what a step depends on (for resuming); ``upstream``: the key of the step whose
        output it was fitted on (the long-term model's short-term posterior); ``lift_tests``: the hash
        of the lift tests in the short-term model's likelihood
        (:func:`ltae.analysis.calibration.lift_tests_hash`; None: no tests, and the key is the one of
        a run without tests)."""
        sampling = self.sampling.model_dump(exclude={"bvar_sampler"})
        parts = {
            "data": data_hash,
            "sampling": sampling,
            "mmm": self.mmm_priors.model_dump(),
            "groups": self.channel_groups,
        }
        if upstream is not None:
            parts["upstream"] = upstream
        if lift_tests is not None:
            parts["lift_tests"] = lift_tests
        if step == "bvar":
            parts.update(
                {
                    "bvar_sampler": self.sampling.bvar_sampler,
                    "bvar": self.bvar_priors.model_dump(),
                    "replicates": self.replicates,
                    "season": self.bvar_seasonality,
                    "controls": self.bvar_controls,
                    "controls_lags": self.bvar_controls_lags,
                    "net_of_controls": self.bvar_net_of_controls,
                }
            )
        return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def check_bounds(low: float, high: float) -> None:
    """Budget multiplier bounds: 0 <= low <= high, high > 0 (ValueError otherwise)."""
    if low < 0 or high < 0:
        raise ValueError(f"bounds must not be negative (got {low:g}, {high:g})")
    if low > high:
        raise ValueError(f"the low bound {low:g} is above the high bound {high:g}")
    if high == 0:
        raise ValueError("the high bound must be above 0")


class ConfigError(DataValidationError):
    """An invalid configuration (file, options or their fit to the data)."""


def load_config(path: str | Path | None) -> dict:
    """Read a TOML or YAML file into a dict (validated later by RunConfig); syntax errors name the
    file and line."""
    if path is None:
        return {}
    p = Path(path)
    if not p.is_file():
        raise ConfigError("configuration file not found", file=str(p))
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"not UTF-8 text ({e.reason} at byte {e.start})", file=str(p)) from None
    except OSError as e:
        raise ConfigError(f"cannot read the file ({e.strerror or e})", file=str(p)) from None
    if p.suffix.lower() in (".yaml", ".yml"):
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
            problem = getattr(e, "problem", None) or str(e)
            raise ConfigError(f"YAML syntax error at {where}{problem}", file=str(p)) from None
        data = {} if data is None else data
    else:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"TOML syntax error: {e}", file=str(p)) from None
    if not isinstance(data, dict):
        raise ConfigError(f"the file must hold a table of settings, not a {type(data).__name__}", file=str(p))
    return data


def merge_overrides(base: dict, overrides: dict) -> dict:
    """``base`` with the non-None values of ``overrides`` (nested). A value of the wrong type in
    ``base`` (e.g. ``sampling = "x"``) is kept as it is, so that validation reports it."""
    out = dict(base)
    for k, v in overrides.items():
        if v is None:
            continue
        if isinstance(v, dict):
            cur = out.get(k)
            if cur is not None and not isinstance(cur, dict):
                continue  # reported by RunConfig validation
            out[k] = merge_overrides(cur or {}, v)
        else:
            out[k] = v
    return out


def _has_key(d, loc) -> bool:
    """Whether ``d`` sets the leaf value at ``loc`` (not merely a table above it)."""
    for part in loc:
        if not isinstance(d, dict) or part not in d:
            return False
        d = d[part]
    return not isinstance(d, dict)


def format_validation_error(exc: ValidationError, overrides: dict | None = None) -> str:
    """All errors of a pydantic validation in one line: each key, its reason and the value given;
    keys set by a command-line option are marked so."""
    given = _drop_none(overrides or {})
    parts = []
    for err in exc.errors():
        loc = tuple(str(p) for p in err.get("loc", ()))
        key = ".".join(loc) or "configuration"
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        got = err.get("input")
        got_txt = "" if err.get("type") == "missing" or isinstance(got, dict) else f" (got {got!r})"
        src = " (command-line option)" if loc and _has_key(given, loc) else ""
        parts.append(f"'{key}': {msg}{got_txt}{src}")
    n = len(parts)
    return (f"{n} invalid settings: " if n > 1 else "invalid setting ") + "; ".join(parts)


def _drop_none(d: dict) -> dict:
    return {k: (_drop_none(v) if isinstance(v, dict) else v) for k, v in d.items() if v is not None}


def build_config(path: str | Path | None = None, overrides: dict | None = None) -> RunConfig:
    """The run configuration from a TOML/YAML file and option overrides; every error at once as
    one :class:`ConfigError` naming the file, each key and the reason."""
    file_dict = load_config(path)
    try:
        return RunConfig.model_validate(merge_overrides(file_dict, overrides or {}))
    except ValidationError as e:
        raise ConfigError(format_validation_error(e, overrides),
                          file=str(path) if path is not None else "configuration") from None


def check_against_data(cfg: RunConfig, ds) -> None:
    """Settings that depend on the data (checked after loading, before any fit)."""
    errors = []
    n = ds.n_weeks
    h = cfg.holdout_weeks
    if h:
        if h >= n:
            errors.append(f"'holdout_weeks': {h} is not less than the data's {n} weeks")
        elif n - h < cfg.data.min_weeks:
            errors.append(f"'holdout_weeks': {h} leaves {n - h} weeks to fit on, fewer than min_weeks "
                          f"({cfg.data.min_weeks}); hold out fewer weeks or lower min_weeks")
    k = cfg.backtest_folds
    if k and hasattr(ds, "markets"):
        errors.append("'backtest_folds': backtests are of one market's (or national) data; this run has "
                      f"{len(ds.markets)} markets")
    elif k:
        from ltae.analysis.backtest import BACKTEST_HORIZON

        left = n - k * BACKTEST_HORIZON
        if left < cfg.data.min_weeks:
            errors.append(f"'backtest_folds': {k} folds of {BACKTEST_HORIZON} weeks leave {max(left, 0)} weeks to fit "
                          f"the first fold on, fewer than min_weeks ({cfg.data.min_weeks}); use fewer folds "
                          f"(at most {max((n - cfg.data.min_weeks) // BACKTEST_HORIZON, 0)})")
    if cfg.channel_groups:
        names = set(ds.channels)
        unknown = [c for g in cfg.channel_groups.values() for c in g if c not in names]
        if unknown:
            errors.append(f"'channel_groups': {', '.join(map(repr, unknown))} "
                          f"{'is not a channel' if len(unknown) == 1 else 'are not channels'} of the data "
                          f"(channels: {', '.join(ds.channels)})")
    if errors:
        raise ConfigError("; ".join(errors), file="configuration")
