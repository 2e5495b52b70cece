"""`lookalike evaluate`: retrieval, synthetic pairs, robustness and tagger metrics of models."""

from __future__ import annotations

from pathlib import Path

import typer

from lookalike.cli.app import app

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
        ..., "--dataset", help="Data set folder (images.csv or items.csv)."
    ),
    model: str | None = typer.Option(None, "--model", help="Encoder name or .onnx path."),
    compare: list[str] | None = typer.Option(
        None, "--compare", help="Compare models on the same split: --compare A --compare B."
    ),
    out: Path = typer.Option(Path("evaluation"), "--out", help="Folder for metrics.json + PNGs."),
    split_file: Path | None = typer.Option(None, "--split", help="Saved split to reuse."),
    test_fraction: float = typer.Option(0.5, help="Share of groups held out."),
    seed: int = typer.Option(0, help="Split, query and augmentation seed."),
    backgrounds: Path | None = typer.Option(
        None, help="Data set whose photo corners serve as real backgrounds (default: itself)."
    ),
    no_plots: bool = typer.Option(False, "--no-plots", help="Metrics only."),
) -> None:
    """Evaluate one model, or compare several side by side, on one data set."""
    from rich.console import Console
    from rich.table import Table

    from lookalike.config import Settings
    from lookalike.evaluation.report import evaluate_models

    settings = Settings()
    models = list(compare or []) or [model or settings.model]
    if model and compare and model not in models:
        models.insert(0, model)
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
    )
    console = Console()
    if run.missing:
        console.print(
            f"[yellow]{len(run.missing)} rows without an image file skipped:[/] "
            + ", ".join(f"row {r} ({i})" for r, i in run.missing[:10])
        )
    table = Table(title=f"{run.dataset} (held-out part; synthetic = augmented-view pairs)")
    table.add_column("metric")
    for m in run.models:
        table.add_column(m, justify="right")
    for row in TABLE_ROWS:
        if any(row in run.metrics[m] for m in run.models):
            name = row.replace("synthetic_pairs", "synthetic pairs (SYNTHETIC)")
            table.add_row(
                name, *[f"{run.metrics[m].get(row, float('nan')):.3f}" for m in run.models]
            )
    console.print(table)
    console.print(
        f"wrote {out / 'metrics.json'} and {len(run.files)} plots in "
        f"{run.seconds:.0f} s; split: {run.split_file or 'none (whole set)'}"
    )
