"""The layering is one-way: io -> data -> models -> analysis -> report/store -> pipeline -> serve -> cli.

Every ``import ltae.x`` in the package (module level or inside a function) is read from the source
and checked against the layer order: a module may import its own layer and the layers below.
"""

from __future__ import annotations

import ast
from pathlib import Path

import ltae

SRC = Path(ltae.__file__).parent

RANK = {
    "io": 0, "distributed": 0,
    "data": 1,
    "models": 2,
    "analysis": 3, "results": 3, "config": 3,
    "report": 4, "store": 4,
    "pipeline": 5, "pipeline_geo": 5, "refresh": 5,
    "serve": 6,  # the API and the dashboard are faces on top of the pipeline, like the CLI
    "cli": 7, "__main__": 7, "__init__": 7,
}

# known upward imports, each with its reason; keep this list short
ALLOWED = {
    # the scenario planner opens a saved run folder (open_run) to predict a plan without refitting
    ("analysis/scenarios.py", "store"),
}


def _layer(rel: Path) -> str:
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def _ltae_imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for n in names:
            parts = n.split(".")
            if parts[0] == "ltae" and len(parts) > 1:
                out.add(parts[1])
    return out


def test_every_module_has_a_layer():
    for path in SRC.rglob("*.py"):
        assert _layer(path.relative_to(SRC)) in RANK, path


def test_imports_go_down_the_layers_only():
    bad = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC)
        me = _layer(rel)
        for target in _ltae_imports(path):
            if target not in RANK or RANK[target] <= RANK[me] or (rel.as_posix(), target) in ALLOWED:
                continue
            bad.append(f"{rel} ({me}) imports ltae.{target}")
    assert not bad, "upward imports:\n" + "\n".join(bad)


def test_models_and_data_import_no_upper_layer():
    """The two rules of issue 16 by name: models/ never imports analysis/, data/ never store/."""
    for layer, forbidden in (("models", {"analysis", "report", "store", "serve"}),
                             ("data", {"models", "analysis", "report", "store", "serve"})):
        for path in (SRC / layer).rglob("*.py"):
            assert not (_ltae_imports(path) & forbidden), path


def test_old_import_paths_still_work():
    from ltae.analysis.diagnostics import convergence_summary as a
    from ltae.analysis.roi import summarize_draws as b
    from ltae.data.csvsafe import neutralize_cell as c
    from ltae.io import atomic_write_json, neutralize_cell
    from ltae.models.diagnostics import convergence_summary, summarize_draws
    from ltae.store.artifacts import atomic_write_json as d

    assert (a, b, c, d) == (convergence_summary, summarize_draws, neutralize_cell, atomic_write_json)
