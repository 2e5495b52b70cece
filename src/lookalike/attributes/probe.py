"""Linear probes on embeddings: one per labelled attribute a catalog has (category, and every
name in `Settings.tag_attributes` the items give: pattern, usage, gender, season...).

A probe is a multinomial logistic regression trained on the catalog's own given labels; it is
stored in the catalog's SQLite (table ``attribute_probes``) and applied at ingest as a vector
tagger, filling the attribute only where the item does not give it. The tag's confidence is
the predicted class probability; below `min_confidence` nothing is filled.

Before the stored probe is fitted on every label, a copy is fitted on 80 % of them (stratified)
and judged on the other 20 %: accuracy, macro F1, the majority-class baseline, and precision,
recall and coverage at the confidence threshold the tagger uses (`heldout_metrics`).
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from lookalike.catalog import Catalog, CatalogStore, Tag
from lookalike.catalog.filters import given_sql
from lookalike.errors import LookalikeError

__all__ = [
    "IGNORED_VALUES",
    "LinearProbe",
    "ProbeTagger",
    "heldout_metrics",
    "labels_for",
    "load_probe",
    "save_probe",
    "train_probe",
]

SCHEMA = """
CREATE TABLE IF NOT EXISTS attribute_probes (
    name TEXT PRIMARY KEY,
    model BLOB NOT NULL,
    info TEXT NOT NULL
);
"""
MIN_PER_CLASS = 5
HELDOUT = 0.2
#: Catalog labels that are not an attribute value (never trained on, never a direction).
IGNORED_VALUES = frozenset({"", "not sure", "skip", "other", "na", "n/a", "none", "unknown",
                            "nan"})


@dataclass(frozen=True)
class LinearProbe:
    """softmax(x·Wᵀ + b) over `classes`."""

    name: str
    classes: tuple[str, ...]
    weights: NDArray[np.float32]  # (classes, dim)
    bias: NDArray[np.float32]  # (classes,)
    info: dict[str, object]

    def probabilities(self, vectors: NDArray[np.float32]) -> NDArray[np.float32]:
        logits = np.asarray(vectors, dtype=np.float32) @ self.weights.T + self.bias
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        out: NDArray[np.float32] = (p / p.sum(axis=1, keepdims=True)).astype(np.float32)
        return out

    def predict(self, vectors: NDArray[np.float32]) -> list[tuple[str, float]]:
        p = self.probabilities(vectors)
        best = p.argmax(axis=1)
        return [(self.classes[int(b)], float(p[i, b])) for i, b in enumerate(best)]


def labels_for(catalog: Catalog, name: str) -> tuple[NDArray[np.int64], list[str]]:
    """(rowids, labels) of items that *give* attribute `name` — a column (category,
    department...) or an extra metadata field (pattern, usage...); predictions never train."""
    expr = given_sql(name)
    with catalog.store.connection() as conn:
        rows = conn.execute(
            f"SELECT rowid, {expr} FROM items WHERE {expr} IS NOT NULL ORDER BY rowid"
        ).fetchall()
    pairs = [(int(r[0]), str(r[1]).strip()) for r in rows
             if str(r[1]).strip().lower() not in IGNORED_VALUES]
    return np.asarray([p[0] for p in pairs], dtype=np.int64), [p[1] for p in pairs]


def heldout_metrics(
    probabilities: NDArray[np.float32], truth: NDArray[np.int64], threshold: float
) -> dict[str, float]:
    """How a probe did on held-out items (rows of class probabilities, true class indices):
    accuracy (= micro F1), macro F1 over the classes present, the majority-class accuracy a
    constant guess gets, and at `threshold` — where the tagger tags only items whose top
    probability reaches it — coverage (share tagged), precision (right among tagged) and
    recall (tagged and right, among all)."""
    n = len(truth)
    if n == 0:
        return {}
    pred = probabilities.argmax(axis=1)
    top = probabilities.max(axis=1)
    right = pred == truth
    f1s = []
    for c in np.unique(truth):
        tp = int(np.sum(right & (truth == c)))
        fp = int(np.sum((pred == c) & (truth != c)))
        fn = int(np.sum((pred != c) & (truth == c)))
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    tagged = top >= threshold
    counts = np.bincount(truth)
    return {
        "heldout_accuracy": float(right.mean()),
        "macro_f1": float(np.mean(f1s)),
        "majority_accuracy": float(counts.max() / n),
        "threshold": float(threshold),
        "coverage": float(tagged.mean()),
        "precision": float(right[tagged].mean()) if tagged.any() else float("nan"),
        "recall": float((right & tagged).mean()),
        "heldout_items": float(n),
    }


#: Inverse regularisation strength of the logistic regressions. On the product-catalogue sample
#: (bench/attribute_taggers.py) 10 beat 1 on every attribute (category macro F1 0.59 vs 0.44);
#: 100 was better still on category (0.77) but slower to fit.
C = 10.0


def train_probe(
    catalog: Catalog, name: str, c: float = C, seed: int = 0,
    threshold: float | None = None,
) -> tuple[LinearProbe, dict[str, float]]:
    """Train a probe on the catalog's given labels of `name`; returns it with its held-out
    metrics (`heldout_metrics` on a stratified 20 %, at `threshold`, by default
    `Settings.tag_min_confidence`). The returned probe is then refitted on every label."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split

    threshold = catalog.settings.tag_min_confidence if threshold is None else threshold
    rowids, labels = labels_for(catalog, name)
    counts: dict[str, int] = {}
    for label in labels:
        counts[label] = counts.get(label, 0) + 1
    classes = sorted(lbl for lbl, n in counts.items() if n >= MIN_PER_CLASS)
    if len(classes) < 2:
        raise LookalikeError(
            f"{name}: need ≥ 2 labels with ≥ {MIN_PER_CLASS} items each to train a probe"
        )
    index = {lbl: i for i, lbl in enumerate(classes)}
    keep = [i for i, lbl in enumerate(labels) if lbl in index]
    x = catalog.index.vectors(rowids[keep])
    y = np.asarray([index[labels[i]] for i in keep], dtype=np.int64)
    train, held = train_test_split(np.arange(len(y)), test_size=HELDOUT, random_state=seed,
                                   stratify=y)
    model = LogisticRegression(C=c, max_iter=500)
    model.fit(x[train], y[train])
    proba = np.zeros((len(held), len(classes)), dtype=np.float32)
    proba[:, model.classes_] = model.predict_proba(x[held])
    metrics = heldout_metrics(proba, y[held], threshold)
    model.fit(x, y)  # the stored probe sees every label
    weights = np.asarray(model.coef_, dtype=np.float32)
    bias = np.asarray(model.intercept_, dtype=np.float32)
    if len(classes) == 2:  # sklearn's binary form: one row for class 1
        weights = np.concatenate([-weights / 2, weights / 2])
        bias = np.concatenate([-bias / 2, bias / 2])
    metrics["train_items"] = float(len(y))
    metrics["classes"] = float(len(classes))
    info = {k: v for k, v in metrics.items() if k != "classes"}  # `classes` is the list
    probe = LinearProbe(name, tuple(classes), weights, bias, {**info, "c": c})
    return probe, metrics


def save_probe(store: CatalogStore, probe: LinearProbe) -> None:
    buf = io.BytesIO()
    np.savez(buf, weights=probe.weights, bias=probe.bias)
    info = {"classes": list(probe.classes), **probe.info}
    with store.transaction() as conn:
        conn.execute(SCHEMA)
        conn.execute(
            "INSERT OR REPLACE INTO attribute_probes(name, model, info) VALUES (?, ?, ?)",
            (probe.name, buf.getvalue(), json.dumps(info)),
        )


def load_probe(store: CatalogStore, name: str) -> LinearProbe | None:
    with store.connection() as conn:
        conn.execute(SCHEMA)
        row = conn.execute(
            "SELECT model, info FROM attribute_probes WHERE name = ?", (name,)
        ).fetchone()
    if row is None:
        return None
    data = np.load(io.BytesIO(row[0]))
    info = json.loads(row[1])
    classes = tuple(info.pop("classes"))
    return LinearProbe(name, classes, data["weights"], data["bias"], info)


class ProbeTagger:
    """Vector tagger for ingest: the probe's class and probability as tag `name`."""

    def __init__(self, probe: LinearProbe, min_confidence: float = 0.5) -> None:
        self.probe = probe
        self.min_confidence = min_confidence

    def __call__(self, vectors: NDArray[np.float32]) -> list[dict[str, Tag]]:
        out: list[dict[str, Tag]] = []
        for value, p in self.probe.predict(vectors):
            if p >= self.min_confidence:
                out.append({self.probe.name: Tag(value=value, confidence=round(p, 3))})
            else:
                out.append({})
        return out
