"""PNG plots a person would rather look at than read: P@k curves, confusion matrix, a 2-D map
of the catalog and contact sheets (query → top 10). Every function writes one file."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageDraw

from lookalike.errors import ImageLoadError
from lookalike.images import load_image


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def precision_curves(results: Mapping[str, Mapping[str, float]], target: Path, title: str) -> Path:
    """precision@k and map@k against k, one line per model, per label kind."""
    plt = _plt()
    kinds = [
        k
        for k in ("category", "colour", "pattern")
        if any(key.startswith(f"{k}/precision@") for m in results.values() for key in m)
    ]
    fig, axes = plt.subplots(1, len(kinds), figsize=(5.2 * len(kinds), 4.2), squeeze=False)
    for ax, kind in zip(axes[0], kinds, strict=True):
        for model, m in results.items():
            ks = sorted(int(key.split("@")[1]) for key in m if key.startswith(f"{kind}/precision@"))
            ax.plot(ks, [m[f"{kind}/precision@{k}"] for k in ks], marker="o", label=f"{model} P@k")
            ax.plot(
                ks,
                [m[f"{kind}/map@{k}"] for k in ks],
                marker=".",
                linestyle="--",
                label=f"{model} mAP@k",
            )
        ax.set_xlabel("k (results)")
        ax.set_ylabel("score")
        ax.set_ylim(0, 1)
        ax.set_title(f"{kind} retrieval")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(target, dpi=110)
    plt.close(fig)
    return target


def confusion(y_true: Sequence[str], y_pred: Sequence[str], target: Path, title: str) -> Path:
    """Row-normalised confusion matrix of a tagger; cells show the share of the true class."""
    plt = _plt()
    labels = [lab for lab, _ in Counter(y_true).most_common()]
    index = {lab: i for i, lab in enumerate(labels)}
    m = np.zeros((len(labels), len(labels)))
    for t, p in zip(y_true, y_pred, strict=True):
        if p in index:
            m[index[t], index[p]] += 1
    m = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
    size = max(6.0, 0.45 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    im = ax.imshow(m, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    for i in range(len(labels)):
        for j in range(len(labels)):
            if m[i, j] >= 0.05:
                ax.text(
                    j,
                    i,
                    f"{m[i, j]:.2f}",
                    ha="center",
                    va="center",
                    fontsize=6,
                    color="white" if m[i, j] > 0.5 else "black",
                )
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, fraction=0.04)
    fig.tight_layout()
    fig.savefig(target, dpi=110)
    plt.close(fig)
    return target


def embedding_map(
    vectors: NDArray[np.float32],
    labels: Sequence[str],
    target: Path,
    title: str,
    max_points: int = 2000,
    seed: int = 0,
) -> Path:
    """t-SNE of (a seeded sample of) the vectors, coloured by label (12 most common)."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    plt = _plt()
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(len(labels), size=min(max_points, len(labels)), replace=False))
    x = vectors[idx]
    x = PCA(n_components=min(50, x.shape[1], len(idx)), random_state=seed).fit_transform(x)
    perplexity = float(min(30, max(2, (len(idx) - 1) // 3)))
    xy = TSNE(n_components=2, init="pca", random_state=seed, perplexity=perplexity).fit_transform(x)
    labs = [labels[i] for i in idx]
    top = [lab for lab, _ in Counter(labs).most_common(12)]
    cmap = plt.get_cmap("tab20")
    fig, ax = plt.subplots(figsize=(9, 7.5))
    rest = np.asarray([lab not in top for lab in labs])
    ax.scatter(xy[rest, 0], xy[rest, 1], s=5, c="lightgrey", label="other labels")
    for k, lab in enumerate(top):
        sel = np.asarray([v == lab for v in labs])
        ax.scatter(xy[sel, 0], xy[sel, 1], s=7, color=cmap(k), label=lab)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(markerscale=3, fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(target, dpi=110)
    plt.close(fig)
    return target


def contact_sheet(
    paths: Sequence[Path],
    labels: Sequence[str],
    queries: Sequence[int],
    results: NDArray[np.int64],
    target: Path,
    title: str,
    thumb: int = 96,
) -> Path:
    """One row per query: the query (blue frame), then its top 10, framed green when the label
    matches the query's and red when not; the label is written under every picture."""
    cols = 1 + results.shape[1]
    pad, text_h, title_h = 6, 14, 24
    cell_w, cell_h = thumb + pad, thumb + text_h + pad
    sheet = Image.new("RGB", (cols * cell_w + pad, title_h + len(queries) * cell_h), "white")
    draw = ImageDraw.Draw(sheet)
    draw.text((pad, 6), title, fill="black")

    def tile(i: int) -> Image.Image:
        try:
            img = load_image(paths[i], draft_size=(thumb, thumb))
        except ImageLoadError:
            return Image.new("RGB", (thumb, thumb), "grey")
        img.thumbnail((thumb, thumb))
        canvas = Image.new("RGB", (thumb, thumb), "white")
        canvas.paste(img, ((thumb - img.width) // 2, (thumb - img.height) // 2))
        return canvas

    for r, (q, row) in enumerate(zip(queries, results, strict=True)):
        y = title_h + r * cell_h
        for c, i in enumerate([q, *[int(v) for v in row]]):
            if i < 0:
                continue
            x = pad + c * cell_w
            colour = "blue" if c == 0 else ("green" if labels[i] == labels[q] else "red")
            sheet.paste(tile(i), (x, y))
            draw.rectangle((x - 2, y - 2, x + thumb + 1, y + thumb + 1), outline=colour, width=3)
            draw.text((x, y + thumb + 2), labels[i][:16], fill="black")
    sheet.save(target)
    return target
