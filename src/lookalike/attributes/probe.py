"""Linear probes on embeddings: category (and pattern, where the catalog has pattern labels).

A probe is a multinomial logistic regression trained on the catalog's own given labels; it is
stored in the catalog's SQLite (table ``attribute_probes``) and applied at ingest as a vector
tagger, filling the attribute only where the item does not give it. The tag's confidence is
the predicted class probability; below `min_confidence` nothing is filled.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from lookalike.catalog import Catalog, CatalogStore, Tag
from lookalike.errors import LookalikeError

__all__ = ["LinearProbe", "ProbeTagger", "labels_for", "load_probe", "save_probe", "train_probe"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS attribute_probes (
    name TEXT PRIMARY KEY,
    model BLOB NOT NULL,
    info TEXT NOT NULL
);
"""
MIN_PER_CLASS = 5
IGNORED_LABELS = frozenset({"", "not sure", "skip", "other"})

_LABEL_SQL = {
    "category": "category",
    "colour": "colour",
    "pattern": "json_extract(extra, '$.pattern')",
}


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
    """(rowids, labels) of items that *give* attribute `name` (predictions never train)."""
    if name not in _LABEL_SQL:
        raise LookalikeError(f"no probe for attribute {name!r}; known: {', '.join(_LABEL_SQL)}")
    expr = _LABEL_SQL[name]
    with catalog.store.connection() as conn:
        rows = conn.execute(
            f"SELECT rowid, {expr} FROM items WHERE {expr} IS NOT NULL ORDER BY rowid"
        ).fetchall()
    pairs = [(int(r[0]), str(r[1]).strip()) for r in rows
             if str(r[1]).strip().lower() not in IGNORED_LABELS]
    return np.asarray([p[0] for p in pairs], dtype=np.int64), [p[1] for p in pairs]


def train_probe(
    catalog: Catalog, name: str, c: float = 1.0, seed: int = 0
) -> tuple[LinearProbe, dict[str, float]]:
    """Train a probe on the catalog's given labels; returns it with held-out accuracy (20%)."""
    from sklearn.linear_model import LogisticRegression

    rowids, labels = labels_for(catalog, name)
    counts: dict[str, int] = {}
    for label in labels:
        counts[label] = counts.get(label, 0) + 1
    classes = sorted(lbl for lbl, n in counts.items() if n >= MIN_PER_CLASS)
    if len(classes) < 2:
        raise LookalikeError(
            f"{name}: need ≥ 2 labels with ≥ {MIN_PER_CLASS} items each to train a probe"
        )
    keep = [i for i, lbl in enumerate(labels) if lbl in classes]
    x = catalog.index.vectors(rowids[keep])
    y = np.asarray([classes.index(labels[i]) for i in keep])
    rng = np.random.default_rng(seed)
    held = rng.random(len(y)) < 0.2
    model = LogisticRegression(C=c, max_iter=300)
    model.fit(x[~held], y[~held])
    accuracy = float((model.predict(x[held]) == y[held]).mean()) if held.any() else float("nan")
    model.fit(x, y)  # the stored probe sees every label
    weights = np.asarray(model.coef_, dtype=np.float32)
    bias = np.asarray(model.intercept_, dtype=np.float32)
    if len(classes) == 2:  # sklearn's binary form: one row for class 1
        weights = np.concatenate([-weights / 2, weights / 2])
        bias = np.concatenate([-bias / 2, bias / 2])
    metrics = {"heldout_accuracy": accuracy, "train_items": float(len(y))}
    probe = LinearProbe(name, tuple(classes), weights, bias, {**metrics, "c": c})
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
