"""`lookalike train`: fine-tune the backbone's last blocks (default: the recipe of the shipped
`lookalike-fashion`), optionally metric-learning heads on cached features; weights saved with
their card."""

from __future__ import annotations

from pathlib import Path

import typer

from lookalike.cli.app import app
from lookalike.encoders.trained import WEIGHTS_DIR


@app.command()
def train(
    dataset: Path = typer.Option(..., "--dataset", help="clothing-dataset folder (images.csv)."),
    out: Path = typer.Option(WEIGHTS_DIR, "--out", help="Folder for <name>.npz + <name>.json."),
    name: str = typer.Option("lookalike-fashion", help="Registered name of the trained model."),
    loss: list[str] = typer.Option(
        ["triplet", "multi-similarity"],
        help="Loss of each head (repeat for an ensemble): triplet, multi-similarity, proxy-anchor",
    ),
    epochs: int = typer.Option(30, min=1),
    identity_weight: float = typer.Option(3.0, help="Weight of the augmented-view identity loss."),
    distill_weight: float = typer.Option(0.0, help="Weight of the similarity distillation."),
    hidden: int = typer.Option(1024, min=0, help="Hidden width of the head (0 = linear)."),
    out_dim: int = typer.Option(256, min=8),
    w_head: float = typer.Option(
        0.0, help="Weight of each head in the final embedding (0 = no heads are trained)."
    ),
    w_backbone: float = typer.Option(1.0, help="Weight of the backbone features."),
    w_colour: float = typer.Option(0.2, help="Weight of the garment colour histogram."),
    colour_power: float = typer.Option(2.0, help="Sharpening of the garment weights for colour."),
    pooling: str = typer.Option("gap", help="gap | attn (activation-weighted pooling)."),
    whiten_shrink: float | None = typer.Option(
        None,
        help="Learn a whitening of the backbone features from the augmented views with this "
        "shrinkage (e.g. 1.0) and train the head on whitened features; off by default.",
    ),
    w_white: float = typer.Option(0.0, help="Weight of the whitened features (whitening on)."),
    w_imagenet: float = typer.Option(
        0.75, help="Weight of the untouched ImageNet top's features beside the fine-tuned ones "
        "(needs --finetune-blocks)."
    ),
    views: int = typer.Option(2, min=0, help="Augmented views cached per training image."),
    finetune_blocks: int = typer.Option(
        4, min=0, help="Fine-tune the backbone's last N blocks + conv head first (0 = off)."
    ),
    finetune_epochs: int = typer.Option(12, min=1),
    finetune_identity: float = typer.Option(0.1, help="Fine-tuning: view identity weight."),
    finetune_distill: float = typer.Option(
        0.1, help="Fine-tuning: weight of keeping the ImageNet top's pairwise similarities."
    ),
    seed: int = typer.Option(0),
) -> None:
    """Train the fashion embedding (resumes from its checkpoints) and save weights + model card.
    The defaults reproduce the shipped model: 4 fine-tuned blocks beside the ImageNet top."""
    from lookalike.training.finetune import FinetuneConfig
    from lookalike.training.head import HeadConfig
    from lookalike.training.loop import EpochReport
    from lookalike.training.pipeline import Combine, train_fashion

    cfg = HeadConfig(
        hidden=hidden,
        out_dim=out_dim,
        loss=loss[0],
        identity_weight=identity_weight,
        distill_weight=distill_weight,
        epochs=epochs,
        seed=seed,
    )
    mix = Combine(
        pooling=pooling,
        w_head=w_head,
        w_backbone=w_backbone,
        w_colour=w_colour,
        colour_power=colour_power,
        whiten_shrink=whiten_shrink,
        w_white=w_white,
        w_imagenet=w_imagenet,
    )

    def progress(r: EpochReport) -> None:
        typer.echo(
            f"epoch {r.epoch}/{r.epochs}  loss {r.loss:.4f}  {r.seconds:.1f} s/epoch  "
            f"ETA {r.eta_seconds:.0f} s"
        )

    result = train_fashion(
        dataset,
        out,
        name=name,
        head_cfg=cfg,
        mix=mix,
        n_views=views,
        seed=seed,
        finetune=FinetuneConfig(
            blocks=finetune_blocks,
            epochs=finetune_epochs,
            identity_weight=finetune_identity,
            distill_weight=finetune_distill,
            seed=seed,
        ),
        progress=progress,
        log=typer.echo,
    )
    for key, value in sorted(result.metrics.items()):
        if key.endswith(("precision@10", "map@10")):
            typer.echo(f"{key:40s} {value:.3f}")
    typer.echo(
        f"saved {result.weights} and {result.card}; "
        f"use it with --model {name} (built into ONNX on first use)"
    )


@app.command()
def project(
    dataset: Path = typer.Option(..., "--dataset", help="clothing-dataset folder (images.csv)."),
    out: Path = typer.Option(WEIGHTS_DIR, "--out", help="Folder for <name>.npz + <name>.json."),
    base: str = typer.Option("lookalike-fashion", help="Trained model to make compact."),
    dim: int = typer.Option(512, min=1, help="Dimensions of the compact vector."),
    power: float = typer.Option(
        0.5, min=0.0, max=1.0, help="Whitening: 0 = plain PCA, 1 = full PCA-whitening."
    ),
    shrink: float = typer.Option(
        0.0, min=0.0, help="Added to each kept eigenvalue, in units of their mean."
    ),
    name: str | None = typer.Option(None, help="Registered name (default: <base>-<dim>)."),
    seed: int = typer.Option(0, help="Seed of the saved contributor split."),
) -> None:
    """Learn a projection of a trained model's vectors to DIM dims on the train contributors
    and save it as a compact model: the base's ONNX graph + a MatMul + L2 normalisation."""
    from lookalike.training.compact import compact_fashion

    result = compact_fashion(
        dataset, out, base=base, dim=dim, power=power, shrink=shrink, name=name, seed=seed,
        log=typer.echo,
    )
    for key, value in sorted(result.metrics.items()):
        if key.endswith(("precision@10", "map@10")):
            typer.echo(f"{key:40s} {value:.4f}")
    typer.echo(f"saved {result.weights} and {result.card}")
