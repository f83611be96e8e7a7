"""The documentation: the site builds with warnings as errors, every public function and class has
a docstring, and the outputs page describes every file and column a real run writes."""

from __future__ import annotations

import importlib
import inspect
import json
import os
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import pytest

import ltae

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"

# modules that are scripts, not API: the Streamlit page runs top to bottom
NOT_API = {"ltae.serve.dashboard", "ltae.__main__"}


def test_site_builds_strict(tmp_path):
    """``mkdocs build --strict``: broken links and anchors, missing pages, docstrings mkdocstrings
    cannot render and hook failures are all errors."""
    pytest.importorskip("mkdocs", reason="the docs extra is not installed (pip install -e '.[docs]')")
    pytest.importorskip("mkdocstrings")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "PYTHONPATH": str(ROOT / "src")}
    r = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site"),
                        "--config-file", str(ROOT / "mkdocs.yml")], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    cli = (tmp_path / "site" / "cli" / "index.html").read_text(encoding="utf-8")
    assert "--min-weeks" in cli and "--risk-quantile" in cli  # the generated CLI reference is there
    api = (tmp_path / "site" / "api" / "data" / "index.html").read_text(encoding="utf-8")
    assert 'id="ltae.data.load.load_dataset"' in api  # and the API reference


def _public_modules():
    names = ["ltae"] + [m.name for m in pkgutil.walk_packages(ltae.__path__, "ltae.")]
    return [n for n in names if n not in NOT_API and not any(p.startswith("_") for p in n.split(".")[1:])]


def _missing_docstrings(mod) -> list[str]:
    out = []
    if not (mod.__doc__ or "").strip():
        out.append(f"{mod.__name__} (module)")
    for name, obj in vars(mod).items():
        if name.startswith("_") or not (inspect.isfunction(obj) or inspect.isclass(obj)):
            continue
        if getattr(obj, "__module__", None) != mod.__name__:
            continue  # imported from elsewhere
        doc = (obj.__doc__ or "").strip()
        if not doc or (inspect.isclass(obj) and doc.startswith(name + "(")):  # a dataclass's generated doc
            out.append(f"{mod.__name__}.{name}")
        if inspect.isclass(obj):
            for attr, member in vars(obj).items():
                if attr.startswith("_"):
                    continue
                fn = member.fget if isinstance(member, property) else getattr(member, "__func__", member)
                if getattr(fn, "__module__", mod.__name__) != mod.__name__:
                    continue  # put there by a base class (pytensor wraps Op.infer_shape)
                if inspect.isfunction(fn) and not (fn.__doc__ or "").strip():
                    out.append(f"{mod.__name__}.{name}.{attr}")
    return out


def test_every_public_function_and_class_has_a_docstring():
    missing = []
    for name in _public_modules():
        missing += _missing_docstrings(importlib.import_module(name))
    assert not missing, "no docstring:\n" + "\n".join(missing)


def test_docstring_check_finds_a_missing_docstring():
    """The check above is not vacuous: a module with an undocumented function fails it."""
    import types

    mod = types.ModuleType("ltae_fake", "A module.")

    def documented():
        """Yes."""

    def bare():
        pass

    for f in (documented, bare):
        f.__module__ = "ltae_fake"
        setattr(mod, f.__name__, f)
    assert _missing_docstrings(mod) == ["ltae_fake.bare"]


def test_outputs_page_describes_every_file_and_column(small_run):
    """Every file in a real run's manifest, every column of its CSV tables and every key of its
    JSON files is named on docs/outputs.md."""
    out, _ = small_run
    page = (DOCS / "outputs.md").read_text(encoding="utf-8")
    named = set(re.findall(r"`([^`]+)`", page))
    man = json.loads((out / "manifest.json").read_text())
    missing = []
    for f in man["files"]:
        if f.startswith("figures/"):
            ok = Path(f).name in named and "figures/*.png" in named
        else:
            ok = f in named or Path(f).name in named
        if not ok:
            missing.append(f"file {f}")
    for csv in ("roi.csv", "budget.csv"):
        header = (out / csv).read_text().splitlines()[0].split(",")
        missing += [f"{csv} column {c}" for c in header if c not in named]
    draws = (out / "roi_draws.csv").read_text().splitlines()[0].split(",")
    missing += [f"roi_draws.csv column {c}" for c in draws if re.sub(r"_.*", "_<c>", c) not in named]
    diag = json.loads((out / "diagnostics.json").read_text())
    for key, value in diag.items():
        keys = [key] + (list(value) if isinstance(value, dict) else [])
        missing += [f"diagnostics.json key {k}" for k in keys if k not in named]
    missing += [f"diagnostics.json checklist key {k}" for k in diag["checklist"][0] if k not in named]
    for k in man:
        missing += [f"manifest.json key {k}"] if k not in named else []
    missing += [f"manifest.json timing {k}" for k in man["timings"] if k not in named]
    quality = json.loads((out / "quality.json").read_text())
    for k, v in quality.items():
        missing += [f"quality.json key {k}"] if k not in named else []
        if isinstance(v, list) and v and isinstance(v[0], dict):
            missing += [f"quality.json {k} field {f}" for f in v[0] if f not in named]
    assert not missing, "not on docs/outputs.md:\n" + "\n".join(missing)
