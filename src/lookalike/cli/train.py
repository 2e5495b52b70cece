"""`lookalike train`: fine-tune the backbone's last blocks (default: the recipe of the shipped
`lookalike-fashion`), optionally metric-learning heads on cached features; weights saved with
their card into the user models folder, where `--model NAME` finds them."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

import typer

from lookalike.cli.app import app
from lookalike.cli.catalog import settings_from


class Loss(StrEnum):
    """Metric-learning losses a head can be trained with (`lookalike.training.head.LOSSES`)."""

    triplet = "triplet"
    multi_similarity = "multi-similarity"
    proxy_anchor = "proxy-anchor"


@app.command()
def train(
    dataset: Path = typer.Option(
        ..., "--dataset", metavar="FOLDER", exists=True, file_okay=False,
        help="clothing-dataset folder (images.csv + images/).",
    ),
    name: str = typer.Option(
        "my-fashion", metavar="NAME",
        help="Name of the trained model: use it afterwards with --model NAME (or NAME-int8).",
    ),
    out: Path | None = typer.Option(
        None, "--out", metavar="FOLDER", show_default="the user models folder, found by name",
        help="Folder for NAME.npz + NAME.json (never the installed package: the shipped model "
        "is read-only).",
    ),
    loss: list[Loss] | None = typer.Option(
        None, metavar="LOSS", show_default="triplet and multi-similarity",
        help="Loss of a head, repeat for an ensemble of heads: triplet, multi-similarity, "
        "proxy-anchor. Heads are trained only with --w-head above 0.",
    ),
    epochs: int = typer.Option(30, metavar="N", min=1, help="Epochs of each head."),
    identity_weight: float = typer.Option(
        3.0, metavar="W", help="Weight of the augmented-view identity loss."
    ),
    distill_weight: float = typer.Option(
        0.0, metavar="W", help="Weight of the similarity distillation."
    ),
    hidden: int = typer.Option(
        1024, metavar="N", min=0, help="Hidden width of a head (0 = linear)."
    ),
    out_dim: int = typer.Option(256, metavar="N", min=8, help="Output size of each head."),
    w_head: float = typer.Option(
        0.0, metavar="W", help="Weight of each head in the final embedding (0 = no heads)."
    ),
    w_backbone: float = typer.Option(1.0, metavar="W", help="Weight of the backbone features."),
    w_colour: float = typer.Option(
        0.2, metavar="W", help="Weight of the garment colour histogram."
    ),
    colour_power: float = typer.Option(
        2.0, metavar="P", help="Sharpening of the garment weights for colour."
    ),
    pooling: str = typer.Option(
        "gap", metavar="gap|attn", help="gap (global average) or attn (activation-weighted)."
    ),
    whiten_shrink: float | None = typer.Option(
        None, metavar="S",
        help="Learn a whitening of the backbone features from the augmented views with this "
        "shrinkage (e.g. 1.0) and train the head on whitened features; off by default.",
    ),
    w_white: float = typer.Option(
        0.0, metavar="W", help="Weight of the whitened features (whitening on)."
    ),
    w_imagenet: float = typer.Option(
        0.75, metavar="W", help="Weight of the untouched ImageNet top's features beside the "
        "fine-tuned ones (needs --finetune-blocks)."
    ),
    views: int = typer.Option(
        2, metavar="N", min=0, help="Augmented views cached per training image."
    ),
    finetune_blocks: int = typer.Option(
        4, metavar="N", min=0,
        help="Fine-tune the backbone's last N blocks + conv head first (0 = off).",
    ),
    finetune_epochs: int = typer.Option(
        12, metavar="N", min=1, help="Epochs of the fine-tuning."
    ),
    finetune_identity: float = typer.Option(
        0.1, metavar="W", help="Fine-tuning: weight of the view identity loss."
    ),
    finetune_distill: float = typer.Option(
        0.1, metavar="W",
        help="Fine-tuning: weight of keeping the ImageNet top's pairwise similarities.",
    ),
    seed: int = typer.Option(0, metavar="N", help="Seed of the split, the views and training."),
) -> None:
    """Train the fashion embedding (resumes from its checkpoints) and save weights + model card
    as NAME in the user models folder. The defaults reproduce the shipped model's recipe:
    4 fine-tuned blocks beside the ImageNet top."""
    if loss and w_head <= 0:
        raise typer.BadParameter(
            "--loss trains heads, and --w-head 0 leaves heads out: add --w-head 1",
            param_hint="'--loss'",
        )
    if pooling not in ("gap", "attn"):
        raise typer.BadParameter(f"{pooling!r}: expected gap or attn", param_hint="'--pooling'")
    settings = settings_from(None)
    from lookalike.encoders.trained import user_models_dir
    from lookalike.training.finetune import FinetuneConfig
    from lookalike.training.head import HeadConfig
    from lookalike.training.loop import EpochReport
    from lookalike.training.pipeline import Combine, train_fashion

    losses = tuple(item.value for item in loss) if loss else ("triplet", "multi-similarity")
    cfg = HeadConfig(
        hidden=hidden,
        out_dim=out_dim,
        loss=losses[0],
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
        out if out is not None else user_models_dir(settings),
        name=name,
        head_cfg=cfg,
        losses=losses,
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
        settings=settings,
        progress=progress,
        log=typer.echo,
    )
    for key, value in sorted(result.metrics.items()):
        if key.endswith(("precision@10", "map@10")):
            typer.echo(f"{key:40s} {value:.3f}")
    usable = out is None or out.resolve() == user_models_dir(settings).resolve()
    typer.echo(
        f"saved {result.weights} and {result.card}; "
        + (f"use it with --model {name} (or {name}-int8; built into ONNX on first use)"
           if usable else
           f"copy both into {user_models_dir(settings)} to use it with --model {name}")
    )


@app.command()
def project(
    dataset: Path = typer.Option(
        ..., "--dataset", metavar="FOLDER", exists=True, file_okay=False,
        help="clothing-dataset folder (images.csv + images/).",
    ),
    base: str = typer.Option(
        "lookalike-fashion", metavar="NAME",
        help="Trained model to make compact (shipped, or in the user models folder).",
    ),
    dim: int = typer.Option(512, metavar="N", min=1, help="Dimensions of the compact vector."),
    power: float = typer.Option(
        0.1, metavar="P", min=0.0, max=1.0,
        help="Whitening, 0 to 1: 0 = plain PCA, 1 = full PCA-whitening (the shipped "
        "lookalike-fashion-512 uses 0.1).",
    ),
    shrink: float = typer.Option(
        0.0, metavar="S", min=0.0,
        help="Added to each kept eigenvalue, in units of their mean (>= 0; damps whitening).",
    ),
    name: str | None = typer.Option(
        None, metavar="NAME", show_default="BASE-DIM",
        help="Name of the compact model: use it afterwards with --model NAME (or NAME-int8).",
    ),
    out: Path | None = typer.Option(
        None, "--out", metavar="FOLDER", show_default="the user models folder, found by name",
        help="Folder for NAME.npz + NAME.json.",
    ),
    seed: int = typer.Option(0, metavar="N", help="Seed of the saved contributor split."),
) -> None:
    """Learn a projection of a trained model's vectors to DIM dims from the train contributors'
    photos and save it as a compact model NAME: the base's ONNX graph + a MatMul + an L2
    normalisation, so catalogs built with it store DIM numbers per item."""
    settings = settings_from(None)
    from lookalike.encoders.trained import user_models_dir
    from lookalike.training.compact import compact_fashion

    result = compact_fashion(
        dataset,
        out if out is not None else user_models_dir(settings),
        base=base, dim=dim, power=power, shrink=shrink, name=name, seed=seed,
        settings=settings, log=typer.echo,
    )
    for key, value in sorted(result.metrics.items()):
        if key.endswith(("precision@10", "map@10")):
            typer.echo(f"{key:40s} {value:.4f}")
    typer.echo(f"saved {result.weights} and {result.card}")
