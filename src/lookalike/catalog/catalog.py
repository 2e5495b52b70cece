"""`Catalog`: the library's front door. One folder holds `catalog.sqlite` (items, embeddings,
the source of truth) and the ANN index file (a rebuildable cache).

    from lookalike import Catalog, Settings
    catalog = Catalog.open(Settings(catalog_dir="my-shop"))
    catalog.ingest(Path("photos"), Path("items.csv"))
    for hit in catalog.search_image(Path("query.jpg"), k=10):
        print(hit.item.title, hit.score)
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from lookalike.catalog.filters import LIST_FIELDS, Filters
from lookalike.catalog.ingest import (
    IngestProgress,
    IngestReport,
    PixelTagger,
    VectorTagger,
    ingest,
)
from lookalike.catalog.schema import Item, ItemIn, ItemUpdate, Tag
from lookalike.catalog.store import CatalogStore, NewItem
from lookalike.colour_names import canonical_colour
from lookalike.config import Settings
from lookalike.encoders import Encoder
from lookalike.encoders import create as create_encoder
from lookalike.errors import CatalogNotFoundError, LookalikeError
from lookalike.images import ImageLimits, ImageSource, content_hash, load_image, read_image_bytes
from lookalike.index import CatalogIndex, SearchPlan

DB_FILE = "catalog.sqlite"


class DuplicateItemError(LookalikeError):
    """An item with that id or the very same image is already in the catalog."""


@dataclass(frozen=True)
class Result:
    """One recommended item. `score` is what the results are ranked by (it never rises down a
    list ranked by `lookalike.recommend`: the match, blended with colour and less a diversity
    penalty; for a raw vector search, the cosine); `similarity` is the plain cosine similarity
    to the query vector, where there is one."""

    item: Item
    score: float
    similarity: float | None = None


@dataclass
class Catalog:
    settings: Settings
    store: CatalogStore
    index: CatalogIndex
    pixel_taggers: list[PixelTagger] = field(default_factory=list)
    vector_taggers: list[VectorTagger] = field(default_factory=list)
    _encoder: Encoder | None = None
    last_plan: SearchPlan | None = None
    _version: int = -1  # the store's vectors_version the index is in step with
    _sync: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def open(
        cls, settings: Settings | None = None, encoder: Encoder | None = None, *,
        create: bool = True,
    ) -> Catalog:
        """Open (or, unless `create` is False, create) the catalog in `settings.catalog_dir`.

        The encoder is the one the catalog was built with (recorded in it), else
        `settings.model`; it is loaded only when an image must be encoded. `create=False`
        raises `CatalogNotFoundError` where there is no catalog, and creates nothing.
        """
        settings = settings or Settings()
        folder = Path(settings.catalog_dir)
        if not create and not (folder / DB_FILE).is_file():
            raise CatalogNotFoundError(str(folder))
        store = CatalogStore(folder / DB_FILE)
        if encoder is not None:
            store.bind_model(encoder.name, encoder.dim)
        stored_dim = store.dim  # the stored vectors' length, even if the record is damaged
        if stored_dim is None:
            encoder = encoder or create_encoder(settings.model, settings)
            store.bind_model(encoder.name, encoder.dim)
            stored_dim = encoder.dim
        index = CatalogIndex(folder, stored_dim, settings)
        try:
            version = store.vectors_version()  # read before the vectors: a later change shows
            index.load(*store.vectors())
        except BaseException:
            store.close()
            raise
        catalog = cls(settings=settings, store=store, index=index, _encoder=encoder,
                      _version=version)
        if settings.auto_tag:  # default taggers (colour; trained probes) — issue 5
            from lookalike.attributes.taggers import install_default_taggers

            install_default_taggers(catalog)
        return catalog

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- properties --------------------------------------------------------------------------

    @property
    def encoder(self) -> Encoder:
        if self._encoder is None:
            name = self.store.model_name or self.settings.model
            self._encoder = create_encoder(name, self.settings)
            self.store.bind_model(self._encoder.name, self._encoder.dim)
        return self._encoder

    @property
    def limits(self) -> ImageLimits:
        return ImageLimits(self.settings.max_image_pixels, self.settings.max_image_bytes)

    def __len__(self) -> int:
        return len(self.index)

    def info(self) -> dict[str, object]:
        return {
            "folder": str(self.settings.catalog_dir),
            "items": self.store.count(),
            "model": self.store.model_name,
            "dim": self.index.dim,
            "index": "hnsw" if self.index.ann is not None else "exact",
        }

    # -- writes ------------------------------------------------------------------------------

    def ingest(
        self,
        images_dir: Path,
        metadata: Path | None = None,
        *,
        report_path: Path | None = None,
        progress: Callable[[IngestProgress], None] | None = None,
        columns: dict[str, str] | None = None,
    ) -> IngestReport:
        """Bulk-add a folder of images (+ CSV/JSONL metadata); see `lookalike.catalog.ingest`."""
        new_ids: list[NDArray[np.int64]] = []
        new_vecs: list[NDArray[np.float32]] = []

        def collect(rowids: list[int], vectors: NDArray[np.float32]) -> None:
            new_ids.append(np.asarray(rowids, dtype=np.int64))
            new_vecs.append(vectors)

        report = ingest(
            self.store,
            self.encoder,
            images_dir,
            metadata,
            limits=self.limits,
            batch_size=self.settings.batch_size,
            chunk_size=self.settings.chunk_size,
            commit_items=self.settings.commit_every,
            decode_threads=self.settings.decode_threads,
            report_path=report_path,
            progress=progress,
            pixel_taggers=self.pixel_taggers,
            vector_taggers=self.vector_taggers,
            on_batch=collect,
            columns=columns,
        )
        if new_ids:
            with self._sync:
                self.index.add(np.concatenate(new_ids), np.concatenate(new_vecs))
        return report

    def add_item(self, item: ItemIn, image: bytes, image_path: Path) -> Item:
        """Add one item whose image bytes are stored at `image_path` (the caller saves them)."""
        digest = content_hash(image)
        ids, hashes = self.store.known_keys()
        if item.id is not None and item.id in ids:
            raise DuplicateItemError(f"an item with id {item.id!r} exists")
        if digest in hashes:
            raise DuplicateItemError("the catalog already holds this exact image")
        size = self.encoder.preprocess.resize_size
        img = load_image(image, limits=self.limits, name=image_path.name, draft_size=(size, size))
        vector = self.encoder.encode_images([img])
        tags: dict[str, Tag] = {}
        for tagger in self.pixel_taggers:
            tags.update(tagger(img))
        for vtagger in self.vector_taggers:
            tags.update(vtagger(vector)[0])
        predicted = {k: t for k, t in tags.items() if not item.gives(k)}
        new = NewItem(item.id or digest[:16], item, str(image_path), digest, predicted)
        (rowid,) = self.store.add([new], vector)
        with self._sync:
            self.index.add(np.asarray([rowid], dtype=np.int64), vector)
        return self.store.get(new.id)

    def update_item(self, item_id: str, change: ItemUpdate) -> Item:
        return self.store.update(item_id, change)

    def delete_item(self, item_id: str) -> None:
        rowid = self.store.delete(item_id)
        with self._sync:
            self.index.remove(np.asarray([rowid], dtype=np.int64))

    def refresh(self) -> bool:
        """Bring the search index in step with SQLite when another process (a second server
        worker, a CLI ingest) has added or removed items since; True if it changed anything.
        Costs one small read when nothing changed, so every search calls it."""
        if self.store.vectors_version() == self._version:
            return False
        with self._sync:
            version = self.store.vectors_version()
            if version == self._version:
                return False
            stored = self.store.vector_rowids()
            have = self.index.exact.ids
            gone = np.setdiff1d(have, stored, assume_unique=True)
            new_ids, new_vectors = self.store.vectors_of(
                np.setdiff1d(stored, have, assume_unique=True)
            )
            # the process that wrote to SQLite saves the ANN file; followers only catch up
            if len(gone):
                self.index.remove(gone, save=False)
            if len(new_ids):
                self.index.add(new_ids, new_vectors, save=False)
            self._version = version
            return bool(len(gone) or len(new_ids))

    # -- reads -------------------------------------------------------------------------------

    def get(self, item_id: str) -> Item:
        return self.store.get(item_id)

    def items(self, filters: Filters | None = None, offset: int = 0, limit: int = 50) -> list[Item]:
        return self.store.list(filters, offset, limit)

    def values(self, field: str) -> list[str]:
        """Every value of a list filter's field (category, brand, colour, size) or other
        attribute (usage, pattern...) that some item has, as the filter matches it (given, else
        predicted; colours by canonical name), sorted."""
        return sorted((v for v, _ in self.store.values(field)), key=str.lower)

    def unknown_filter_values(self, filters: Filters, shown: int = 30) -> list[str]:
        """A plain sentence for each filter value no item has, with the values that exist:
        "no item has category 'Spacesuits'; categories: Dress, Hat, ..." (why a search came
        back short or empty). Case-insensitive, as the filters are; colours by canonical name
        (`navy blue` is known where items are `navy`)."""
        notes = []
        wanted_by = [(name, list(getattr(filters, name))) for name in LIST_FIELDS]
        wanted_by += list(filters.attributes.items())
        for name, wanted in wanted_by:
            if not wanted:
                continue
            existing = self.values(name)
            key = canonical_colour if name == "colour" else str.lower
            known = {key(v) for v in existing}
            plural = {"category": "categories", "brand": "brands", "colour": "colours",
                      "size": "sizes"}.get(name, f"{name} values")
            listed = ", ".join(existing[:shown]) + (
                f", ... ({len(existing) - shown} more)" if len(existing) > shown else ""
            )
            for value in wanted:
                if key(value) not in known:
                    notes.append(f"no item has {name} {value!r}; "
                                 + (f"{plural}: {listed}" if existing else f"no item has a {name}"))
        return notes

    def vector_of(self, item_id: str) -> NDArray[np.float32]:
        self.refresh()
        rowid = self.store.rowid_of(item_id)
        vecs = self.index.vectors_of(np.asarray([rowid], dtype=np.int64))
        if len(vecs) == 0:
            return self.store.vector(rowid)
        vec: NDArray[np.float32] = vecs[0]
        return vec

    def load_photo(self, source: ImageSource, name: str | None = None) -> Image.Image:
        """Decode one photo (path or bytes) as ingest does: within the image limits, at the
        size the encoder needs (so embedding and colour tags of a query match a stored item's)."""
        if not isinstance(source, bytes):
            name = name or str(source)
            source = read_image_bytes(source, self.limits)
        size = self.encoder.preprocess.resize_size
        return load_image(source, limits=self.limits, name=name, draft_size=(size, size))

    def embed_image(self, img: Image.Image) -> NDArray[np.float32]:
        """Encode one decoded photo into a unit vector."""
        vec: NDArray[np.float32] = self.encoder.encode_batch(self.encoder.preprocess(img)[None])[0]
        return vec

    def embed(self, source: ImageSource, name: str | None = None) -> NDArray[np.float32]:
        """Encode one photo (path or bytes) into a unit vector."""
        return self.embed_image(self.load_photo(source, name))

    def allowed_rowids(self, filters: Filters | None) -> NDArray[np.int64] | None:
        """Rowids a filter keeps, or None for no filter."""
        if filters is None or filters.is_empty():
            return None
        return self.store.filter_rowids(filters)

    def search_vectors(
        self,
        queries: NDArray[np.float32],
        k: int = 10,
        filters: Filters | None = None,
        exclude: Sequence[int] = (),
    ) -> list[list[tuple[int, float]]]:
        """Nearest (rowid, score) per query vector, pre-filtered, `exclude`d rowids left out."""
        self.refresh()
        allowed = self.allowed_rowids(filters)
        if allowed is not None and exclude:
            allowed = np.setdiff1d(allowed, np.asarray(exclude, dtype=np.int64))
        excluded = set(int(e) for e in exclude)
        kk = k if allowed is not None else k + len(excluded)
        scores, ids, plan = self.index.search(np.atleast_2d(queries), kk, allowed)
        self.last_plan = plan
        out = []
        for row_s, row_i in zip(scores, ids, strict=True):
            hits = [(int(i), float(s)) for s, i in zip(row_s, row_i, strict=True)
                    if i >= 0 and int(i) not in excluded]
            out.append(hits[:k])
        return out

    def results(
        self,
        hits: Sequence[tuple[int, float]],
        similarities: Sequence[float | None] | None = None,
    ) -> list[Result]:
        """`Result`s of (rowid, score) hits (rowids no longer in the store left out)."""
        items = {it.rowid: it for it in self.store.get_many([r for r, _ in hits])}
        sims = similarities if similarities is not None else [None] * len(hits)
        return [Result(items[r], s, sim)
                for (r, s), sim in zip(hits, sims, strict=True) if r in items]

    def search_vector(
        self,
        query: NDArray[np.float32],
        k: int = 10,
        filters: Filters | None = None,
        exclude: Sequence[int] = (),
    ) -> list[Result]:
        """Nearest items to a vector by cosine alone (no colour, no diversity): the raw index."""
        hits = self.search_vectors(query[None], k, filters, exclude)[0]
        return self.results(hits, [s for _, s in hits])

    def search_image(
        self,
        source: ImageSource,
        k: int = 10,
        filters: Filters | None = None,
        *,
        colour_weight: float | None = None,
        diversity: float | None = None,
        offset: int = 0,
        name: str | None = None,
    ) -> list[Result]:
        """Look-alikes of a photo (path or bytes; `name` labels bytes in errors): results
        `offset` … `offset + k` of its ranking. `colour_weight` ("match colour", 0–1) and
        `diversity` (0–1) default to the settings'; see `lookalike.recommend.recommend`."""
        from lookalike.recommend import Query, recommend  # recommend builds on the catalog

        query = Query(colour_weight=colour_weight, diversity=diversity).add_photo(
            self, source, name=name
        )
        return recommend(self, query, k, filters, offset=offset)

    def similar(
        self,
        item_id: str,
        k: int = 10,
        filters: Filters | None = None,
        *,
        colour_weight: float | None = None,
        diversity: float | None = None,
        offset: int = 0,
    ) -> list[Result]:
        """"More like this": look-alikes of a catalog item, the item itself left out; same
        controls as `search_image`."""
        from lookalike.recommend import Query, recommend

        query = Query(colour_weight=colour_weight, diversity=diversity).add_item(self, item_id)
        return recommend(self, query, k, filters, offset=offset)
