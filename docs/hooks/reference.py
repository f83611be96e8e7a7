"""mkdocs hook: the CLI and configuration references are generated from the code at build time.

``<!-- ltae:cli -->`` in a page becomes one section per command of ``ltae.cli.app`` with every
option, its default and its help; ``<!-- ltae:config -->`` becomes a table of every key of
``ltae.config.RunConfig`` (nested tables included) with its type and default (as JSON). The pages can never
list an option or a key that does not exist, or miss one that does.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

_SRC = Path(__file__).resolve().parents[2] / "src"
if str(_SRC) not in sys.path:
    sys.path.insert(0, str(_SRC))


def _cell(text) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def cli_reference() -> str:
    import typer

    from ltae.cli import app

    group = typer.main.get_command(app)
    out = []
    for name, cmd in group.commands.items():
        out.append(f"### `ltae {name}`\n")
        out.append((cmd.help or "").strip().replace("\n\n", "\n\n") + "\n")
        rows = []
        for p in cmd.params:
            if p.param_type_name != "option" or getattr(p, "hidden", False):
                continue
            flags = ", ".join(f"`{o}`" for o in [*p.opts, *p.secondary_opts])
            if getattr(p, "is_flag", False) and not p.secondary_opts:
                default = "off" if not p.default else "on"
            elif p.required:
                default = "required"
            elif p.default is None:
                default = "–"
            else:
                default = f"`{p.default}`"
            rows.append(f"| {flags} | {default} | {_cell(p.help or '')} |")
        if rows:
            out.append("| option | default | meaning |\n|---|---|---|\n" + "\n".join(rows) + "\n")
    return "\n".join(out)


def _type_name(ann) -> str:
    text = getattr(ann, "__name__", None) if not getattr(ann, "__args__", None) else None
    return text or str(ann).replace("typing.", "")


def config_reference() -> str:
    from pydantic import BaseModel

    from ltae.config import RunConfig

    rows = []

    def walk(model: type[BaseModel], instance: BaseModel, prefix: str) -> None:
        for name, field in type(instance).model_fields.items():
            value = getattr(instance, name)
            if isinstance(value, BaseModel):
                walk(type(value), value, f"{prefix}{name}.")
                continue
            key = f"{prefix}{name}"
            default = "–" if value is None else f"`{_cell(json.dumps(value, default=list))}`"
            rows.append(f"| `{key}` | `{_cell(_type_name(field.annotation))}` | {default} |")

    walk(RunConfig, RunConfig(), "")
    return "| key | type | default |\n|---|---|---|\n" + "\n".join(rows) + "\n"


def on_page_markdown(markdown: str, page, config, files) -> str:  # noqa: ARG001 - mkdocs hook signature
    if "<!-- ltae:cli -->" in markdown:
        markdown = markdown.replace("<!-- ltae:cli -->", cli_reference())
    if "<!-- ltae:config -->" in markdown:
        markdown = markdown.replace("<!-- ltae:config -->", config_reference())
    return markdown
