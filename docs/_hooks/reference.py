"""MkDocs hook: the CLI, configuration and HTTP references are generated from the code at
every build, so they cannot drift from it. A page asks for one with a marker line:

    <!-- generated: cli -->
    <!-- generated: settings -->
    <!-- generated: http -->
"""

from __future__ import annotations

import re
import tempfile
from typing import Any

import typer

MARKER = re.compile(r"^<!-- generated: (\w+) -->$", re.MULTILINE)


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ").strip()


def _param_row(param: Any, ctx: Any) -> str | None:
    """One table row from the parameter's own help record (what `--help` shows)."""
    record = param.get_help_record(ctx)
    if record is None:
        return None
    names, help_text = record
    if param.param_type_name == "argument":
        names = param.name.upper()
        help_text = param.help or ""
    return f"| `{_cell(names)}` | {_cell(help_text)} |"


def cli_reference() -> str:
    from lookalike.cli import app

    root: Any = typer.main.get_command(app)
    out = []
    ctx = root.make_context("lookalike", [], resilient_parsing=True)
    for name in sorted(root.commands):
        cmd = root.commands[name]
        sub = cmd.make_context(name, [], parent=ctx, resilient_parsing=True)
        out.append(f"## `lookalike {name}`\n")
        out.append((cmd.help or "").strip() + "\n")
        out.append(f"```\n{cmd.get_usage(sub)}\n```\n")
        rows = [r for p in cmd.params if p.name != "help" and (r := _param_row(p, sub))]
        if rows:
            out.append("| argument / option | what it does |\n|---|---|")
            out.extend(rows)
            out.append("")
    return "\n".join(out)


def settings_reference() -> str:
    from pydantic_core import PydanticUndefined

    from lookalike.config import Settings

    prefix = Settings.model_config.get("env_prefix", "")
    out = ["| variable | type | default | range | what it does |", "|---|---|---|---|---|"]
    for name, field in Settings.model_fields.items():
        if field.default_factory is not None:
            default = "(computed)"
        elif field.default is PydanticUndefined:
            default = "required"
        else:
            default = f"`{field.default}`"
        bounds = []
        for meta in field.metadata:
            for attr, sign in (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<")):
                value = getattr(meta, attr, None)
                if value is not None:
                    bounds.append(f"{sign} {value}")
        kind = getattr(field.annotation, "__name__", None) or str(field.annotation)
        kind = kind.replace("typing.", "").replace("pathlib.", "")
        out.append(
            f"| `{prefix.upper()}{name.upper()}` | {_cell(kind)} | {_cell(default)} | "
            f"{_cell(', '.join(bounds))} | {_cell(field.description or '')} |"
        )
    return "\n".join(out)


def http_reference() -> str:
    from lookalike.api import create_app
    from lookalike.catalog import Catalog
    from lookalike.config import Settings

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(catalog_dir=tmp, model="fake", cache_dir=tmp, auto_tag=False)
        catalog = Catalog.open(settings)
        try:
            spec: dict[str, Any] = create_app(settings, catalog).openapi()
        finally:
            catalog.close()
    out = []
    for path, methods in spec["paths"].items():
        for method, op in methods.items():
            out.append(f"### `{method.upper()} {path}`\n")
            out.append((op.get("summary") or "") + "\n")
            if op.get("description"):
                out.append(op["description"].strip() + "\n")
            params = op.get("parameters", [])
            if params:
                out.append("| parameter | in | required | description |\n|---|---|---|---|")
                for p in params:
                    out.append(
                        f"| `{p['name']}` | {p['in']} | {'yes' if p.get('required') else ''} | "
                        f"{_cell(p.get('description', ''))} |"
                    )
                out.append("")
            body = op.get("requestBody", {}).get("content", {})
            for media, content in body.items():
                ref = content.get("schema", {}).get("$ref", "")
                fields = spec.get("components", {}).get("schemas", {}).get(
                    ref.rsplit("/", 1)[-1], {}
                ).get("properties", {})
                if fields:
                    out.append(f"Body ({media}): " + ", ".join(f"`{f}`" for f in fields) + "\n")
    return "\n".join(out)


GENERATORS = {"cli": cli_reference, "settings": settings_reference, "http": http_reference}


def on_page_markdown(markdown: str, **_: Any) -> str:
    def replace(match: re.Match[str]) -> str:
        return GENERATORS[match.group(1)]()

    return MARKER.sub(replace, markdown)
