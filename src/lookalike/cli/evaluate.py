"""`lookalike evaluate`: retrieval, synthetic pairs, robustness and tagger metrics of models."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from lookalike.cli.app import app
from lookalike.errors import LookalikeError

if TYPE_CHECKING:  # the library loads only once the arguments are checked
    from lookalike.evaluation.report import EvaluationRun

# rows of the side-by-side table, in order; absent metrics are skipped
TABLE_ROWS = (
    "category/precision@1",
    "category/precision@5",
    "category/precision@10",
    "category/precision@20",
    "category/map@10",
    "colour/precision@10",
    "pattern/precision@10",
    "colour/top10_majority_agreement",
    "dominant_colour/top10_majority_agreement",
    "synthetic_pairs/top1",
    "synthetic_pairs/top5",
    "synthetic_pairs/top10",
    "background-swap/top1",
    "crop-zoom-50/top1",
    "crop-zoom-25/top1",
    "category_tagger/micro_f1",
    "category_tagger/macro_f1",
    "colour_tagger/micro_f1",
    "colour_tagger/macro_f1",
)


@app.command()
def evaluate(
    dataset: Path = typer.Option(
        ...,
        "--dataset",
        help="Data set folder: images.csv (clothing-dataset) or a catalog's items.csv / "
        "items.jsonl / catalog.csv (image required; category, colour, pattern and a group "
        "column group / sender_id / contributor used when present), images in images/.",
    ),
    metadata: Path | None = typer.Option(
        None, "--metadata", help="Metadata file to read instead of the folder's own."
    ),
    column: list[str] | None = typer.Option(
        None, "--map", help="Rename a metadata column: type=category (repeatable)."
    ),
    model: str | None = typer.Option(None, "--model", help="Encoder name or .onnx path."),
    compare: list[str] | None = typer.Option(
        None, "--compare", help="Compare models on the same split: --compare A --compare B."
    ),
    out: Path = typer.Option(Path("evaluation"), "--out", help="Folder for metrics.json + PNGs."),
    split_file: Path | None = typer.Option(None, "--split", help="Saved split to reuse."),
    test_fraction: float = typer.Option(
        0.5, help="Share of groups held out (data sets with a group column)."
    ),
    seed: int = typer.Option(0, help="Split, query and augmentation seed."),
    backgrounds: Path | None = typer.Option(
        None, help="Data set whose photo corners serve as real backgrounds (default: itself)."
    ),
    no_plots: bool = typer.Option(False, "--no-plots", help="Metrics only."),
) -> None:
    """Evaluate one model, or compare several side by side, on one data set.

    Metrics whose labels the data set lacks, or with too few examples, are skipped with the
    reason; the report says which part of the data set was evaluated and why."""
    from lookalike.config import Settings
    from lookalike.evaluation.report import evaluate_models

    settings = Settings()
    models = list(compare or []) or [model or settings.model]
    if model and compare and model not in models:
        models.insert(0, model)
    renames = _renames(column or [])  # a LookalikeError is one line, exit 2 (cli/app.py)
    run = evaluate_models(
        dataset,
        models,
        out,
        settings=settings,
        split_file=split_file,
        test_fraction=test_fraction,
        seed=seed,
        backgrounds=backgrounds,
        plots_enabled=not no_plots,
        metadata=metadata,
        columns=renames,
    )
    _print_run(run, out)


def _renames(pairs: list[str]) -> dict[str, str]:
    bad = [p for p in pairs if "=" not in p or not all(p.split("=", 1))]
    if bad:
        raise LookalikeError(f"--map {bad[0]!r}: expected OLD=NEW, e.g. type=category")
    return dict(p.split("=", 1) for p in pairs)


def _print_run(run: EvaluationRun, out: Path) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from lookalike.evaluation.scoring import family_of

    console = Console()
    if run.missing:
        console.print(
            f"[yellow]{len(run.missing)} rows without an image file skipped:[/] "
            + escape(", ".join(f"row {r} ({i})" for r, i in run.missing[:10]))
        )
    if run.rejected:
        console.print(
            f"[yellow]{len(run.rejected)} rows rejected:[/] "
            + escape(", ".join(f"row {r} ({why})" for r, why in run.rejected[:10]))
        )
    part = run.part
    if part:
        console.print(escape(f"evaluated {part.summary()}"), highlight=False, soft_wrap=True)
        console.print(escape(f"  why: {part.reason}"), highlight=False, soft_wrap=True)
    title = f"{run.dataset}: {part.title() if part else '?'}"
    table = Table(
        title=escape(title),
        min_width=len(title) + 4,  # the title on one line where the terminal allows
        caption="n = queries, pairs, photos or test items; SYNTHETIC = two augmented views of "
        "a photo",
    )
    table.add_column("metric")
    table.add_column("n", justify="right")
    for m in run.models:
        table.add_column(m, justify="right")
    first = run.examples.get(run.models[0], {})
    rows = [r for r in TABLE_ROWS if any(r in run.metrics[m] for m in run.models)]
    for row in rows:
        name = row.replace("synthetic_pairs", "synthetic pairs (SYNTHETIC)")
        spec = family_of(row)
        n = first.get(spec.name) if spec else None
        table.add_row(
            name,
            "" if n is None else str(n),
            *[f"{run.metrics[m].get(row, float('nan')):.3f}" for m in run.models],
        )
    if rows:
        console.print(table)
    else:
        console.print(f"[bold yellow]no metric could be computed on {escape(title)}[/]")
    for what, why in run.skipped_once().items():
        console.print(f"[yellow]skipped[/] {escape(f'{what}: {why}')}", highlight=False,
                      soft_wrap=True)
    for what, why in run.plots_skipped.items():
        console.print(f"[dim]no plot[/] {escape(f'{what}: {why}')}", highlight=False,
                      soft_wrap=True)
    console.print(escape(
        f"wrote {out / 'metrics.json'} and {len(run.files)} plots in "
        f"{run.seconds:.0f} s; split: {run.split_file or 'none (whole set)'}"
    ))
