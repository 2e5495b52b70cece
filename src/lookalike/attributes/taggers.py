"""The taggers a catalog runs by default, and tagging of items already in a catalog.

A catalog opened with `Catalog.open(settings, taggers=default_taggers)` tags new photos. At
ingest (and `Catalog.add_item`) the colour tagger runs on the decoded pixels; a probe
per attribute of `Settings.tag_attributes` (category, pattern, usage, gender...) runs on the
embeddings once it has been trained for that catalog (`train_probes`, CLI `lookalike tag`).
Predictions only fill attributes the item leaves empty (a column or an extra field): a given
value is never overwritten.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lookalike.attributes.colour import ColourTagger
from lookalike.attributes.probe import ProbeTagger, load_probe, save_probe, train_probe
from lookalike.catalog import Catalog, Tag
from lookalike.catalog.filters import given_sql
from lookalike.catalog.imagefiles import image_file
from lookalike.catalog.ingest import PixelTagger, VectorTagger
from lookalike.errors import ImageLoadError, LookalikeError
from lookalike.images import load_image

__all__ = [
    "TagReport",
    "default_taggers",
    "tag_catalog",
    "train_probes",
]


def _probe_taggers(catalog: Catalog) -> list[ProbeTagger]:
    """A `ProbeTagger` per attribute of `Settings.tag_attributes` with a trained probe."""
    s = catalog.settings
    probes = (load_probe(catalog.store, name) for name in s.tag_attributes)
    return [ProbeTagger(p, s.tag_min_confidence) for p in probes if p is not None]


def default_taggers(catalog: Catalog) -> tuple[list[PixelTagger], list[VectorTagger]]:
    """(pixel taggers, vector taggers) for new photos of `catalog`: colour, and a probe per
    trained attribute; none when `Settings.auto_tag` is off. A `TaggerSource`:
    `Catalog.open(settings, taggers=default_taggers)`."""
    if not catalog.settings.auto_tag:
        return [], []
    vector: list[VectorTagger] = [*_probe_taggers(catalog)]
    return [ColourTagger()], vector


def train_probes(catalog: Catalog) -> dict[str, dict[str, float]]:
    """Train and store a probe per attribute of `Settings.tag_attributes` that has enough given
    labels (2+ values with 5+ items each); returns each one's held-out metrics
    (`lookalike.attributes.probe.heldout_metrics`)."""
    out: dict[str, dict[str, float]] = {}
    for name in catalog.settings.tag_attributes:
        try:
            probe, metrics = train_probe(catalog, name)
        except LookalikeError:
            continue
        save_probe(catalog.store, probe)
        out[name] = metrics
    catalog.use_taggers(catalog.taggers or default_taggers)  # the new probes tag from now on
    return out


@dataclass
class TagReport:
    items: int = 0
    tagged: dict[str, int] = field(default_factory=dict)
    unreadable: int = 0


def tag_catalog(
    catalog: Catalog,
    *,
    colour: bool = True,
    probes: bool = True,
    only_missing: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> TagReport:
    """Tag items already in the catalog (e.g. ingested before taggers existed)."""
    report = TagReport()
    probe_taggers = [t for t in _probe_taggers(catalog) if probes]
    given = "".join(f", {given_sql(t.probe.name)}" for t in probe_taggers)
    with catalog.store.connection() as conn:
        rows = conn.execute(
            f"SELECT rowid, image_path, predicted, colour{given} FROM items ORDER BY rowid"
        ).fetchall()
    report.items = len(rows)
    tagger = ColourTagger()

    def colour_tags(path: str) -> dict[str, Tag] | None:
        try:
            file = image_file(Path(catalog.settings.catalog_dir), path)
            img = load_image(file, limits=catalog.limits, draft_size=(128, 128))
        except (ImageLoadError, OSError):
            return None
        return tagger(img)

    todo = [r for r in rows if not (only_missing and "palette" in json.loads(r[2]))]
    colour_results: dict[int, dict[str, Tag] | None] = {}
    if colour and todo:
        with ThreadPoolExecutor(max_workers=catalog.settings.decode_threads) as pool:
            for i, (row, found) in enumerate(
                zip(todo, pool.map(colour_tags, [r[1] for r in todo]), strict=True)
            ):
                colour_results[int(row[0])] = found
                if progress is not None and i % 200 == 0:
                    progress(i, len(todo))
    for row in rows:
        rowid = int(row[0])
        tags: dict[str, Tag] = {}
        got = colour_results.get(rowid)
        if rowid in colour_results and got is None:
            report.unreadable += 1
        if got:
            tags.update(got)
        missing = [t for t, value in zip(probe_taggers, row[4:], strict=True)
                   if value is None or str(value).strip() == ""]
        if missing:
            vec = catalog.index.vectors(np.asarray([rowid], dtype=np.int64))
            if len(vec):
                for pt in missing:
                    tags.update(pt(vec)[0])
        if row[3]:
            tags.pop("colour", None)  # never shadow a given value
        if tags:
            catalog.store.set_predicted(rowid, tags)
            for name in tags:
                report.tagged[name] = report.tagged.get(name, 0) + 1
    return report
