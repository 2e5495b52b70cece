"""`Catalog`: the library's front door. One folder holds `catalog.sqlite` (items, embeddings,
the source of truth) and the vector store's files (`vectors/`, rebuilt from SQLite whenever
missing or damaged; or a Milvus server, see `lookalike.index.vector_store`).

    from lookalike import Catalog, Settings
    catalog = Catalog.open(Settings(catalog_dir="my-shop"))
    catalog.ingest(Path("photos"), Path("items.csv"))
    for hit in catalog.search_image(Path("query.jpg"), k=10):
        print(hit.item.title, hit.score)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from lookalike.catalog.filters import Filters
from lookalike.catalog.ingest import (
    IngestProgress,
    IngestReport,
    PixelTagger,
    VectorTagger,
    ingest,
)
from lookalike.catalog.schema import Item, ItemIn, ItemUpdate, Tag
from lookalike.catalog.store import CatalogStore, NewItem, scalars_of_item
from lookalike.config import Settings
from lookalike.encoders import Encoder, create
from lookalike.errors import LookalikeError
from lookalike.images import ImageLimits, ImageSource, content_hash, load_image, read_image_bytes
from lookalike.index import Scalars, SearchPlan, VectorStore, open_vector_store

DB_FILE = "catalog.sqlite"


class DuplicateItemError(LookalikeError):
    """An item with that id or the very same image is already in the catalog."""


@dataclass(frozen=True)
class Result:
    """One recommended item and its cosine similarity to the query."""

    item: Item
    score: float


@dataclass
class Catalog:
    settings: Settings
    store: CatalogStore
    index: VectorStore
    pixel_taggers: list[PixelTagger] = field(default_factory=list)
    vector_taggers: list[VectorTagger] = field(default_factory=list)
    _encoder: Encoder | None = None
    last_plan: SearchPlan | None = None

    @classmethod
    def open(cls, settings: Settings | None = None, encoder: Encoder | None = None) -> Catalog:
        """Open (or create) the catalog in `settings.catalog_dir`.

        The encoder is the one the catalog was built with (recorded in it), else
        `settings.model`; it is loaded only when an image must be encoded.
        """
        settings = settings or Settings()
        folder = Path(settings.catalog_dir)
        store = CatalogStore(folder / DB_FILE)
        if encoder is not None:
            store.bind_model(encoder.name, encoder.dim)
        stored_dim = store.get_meta("dim")
        if stored_dim is None:
            encoder = encoder or create(settings.model, settings)
            store.bind_model(encoder.name, encoder.dim)
            stored_dim = str(encoder.dim)
        index = open_vector_store(settings, folder, int(stored_dim), store)
        catalog = cls(settings=settings, store=store, index=index, _encoder=encoder)
        if settings.auto_tag:  # default taggers (colour; trained probes) — issue 5
            from lookalike.attributes.taggers import install_default_taggers

            install_default_taggers(catalog)
        return catalog

    def close(self) -> None:
        self.index.close()
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
            self._encoder = create(name, self.settings)
            self.store.bind_model(self._encoder.name, self._encoder.dim)
        return self._encoder

    @property
    def limits(self) -> ImageLimits:
        return ImageLimits(self.settings.max_image_pixels, self.settings.max_image_bytes)

    def __len__(self) -> int:
        return len(self.index)

    def info(self) -> dict[str, object]:
        store = self.index.describe()
        return {
            "folder": str(self.settings.catalog_dir),
            "items": self.store.count(),
            "model": self.store.model_name,
            "dim": self.index.dim,
            "index": str(store["method"]),
            "vector_store": store,
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
            ids = np.concatenate(new_ids)
            self.index.upsert(ids, np.concatenate(new_vecs), self.store.scalars_of(ids))
        return report

    def add_item(self, item: ItemIn, image: bytes, image_path: Path) -> Item:
        """Add one item whose image bytes are stored at `image_path` (the caller saves them)."""
        digest = content_hash(image)
        ids, hashes = self.store.known_keys()
        if item.id is not None and item.id in ids:
            raise DuplicateItemError(f"an item with id {item.id!r} exists")
        if digest in hashes:
            raise DuplicateItemError("the catalog already holds this exact image")
        img = load_image(image, limits=self.limits, name=image_path.name)
        vector = self.encoder.encode_images([img])
        tags: dict[str, Tag] = {}
        for tagger in self.pixel_taggers:
            tags.update(tagger(img))
        for vtagger in self.vector_taggers:
            tags.update(vtagger(vector)[0])
        predicted = {k: t for k, t in tags.items() if not getattr(item, k, None)}
        new = NewItem(item.id or digest[:16], item, str(image_path), digest, predicted)
        self.add_items([new], vector)
        return self.store.get(new.id)

    def add_items(self, items: Sequence[NewItem], vectors: NDArray[np.float32]) -> list[int]:
        """Add items whose vectors are already computed (an import, a re-embedding, a
        benchmark): one SQLite transaction, then the vector store; returns their rowids."""
        vectors = np.asarray(vectors, dtype=np.float32).reshape(len(items), -1)
        if vectors.shape[1] != self.index.dim:
            raise ValueError(f"vectors are {vectors.shape[1]}-d, the catalog's {self.index.dim}")
        rowids = self.store.add(items, vectors)
        self.index.upsert(
            np.asarray(rowids, dtype=np.int64), vectors,
            [scalars_of_item(it.fields, it.predicted) for it in items],
        )
        return rowids

    def update_item(self, item_id: str, change: ItemUpdate) -> Item:
        item = self.store.update(item_id, change)
        rowid = np.asarray([item.rowid], dtype=np.int64)
        self.index.set_fields(rowid, self.store.scalars_of(rowid))
        return item

    def delete_item(self, item_id: str) -> None:
        rowid = self.store.delete(item_id)
        self.index.remove(np.asarray([rowid], dtype=np.int64))

    def refresh(self) -> bool:
        """Bring the vector store in step with SQLite when another process (a second server
        worker, a CLI ingest) has changed items since; True if it changed anything. Costs one
        small read when nothing changed, so every search calls it."""
        return self.index.sync()

    # -- reads -------------------------------------------------------------------------------

    def get(self, item_id: str) -> Item:
        return self.store.get(item_id)

    def items(self, filters: Filters | None = None, offset: int = 0, limit: int = 50) -> list[Item]:
        return self.store.list(filters, offset, limit)

    def vector_of(self, item_id: str) -> NDArray[np.float32]:
        self.refresh()
        rowid = self.store.rowid_of(item_id)
        vecs = self.index.vectors(np.asarray([rowid], dtype=np.int64))
        if len(vecs) == 0:
            return self.store.vector(rowid)
        vec: NDArray[np.float32] = vecs[0]
        return vec

    def embed(self, source: ImageSource, name: str | None = None) -> NDArray[np.float32]:
        """Encode one photo (path or bytes) into a unit vector."""
        if not isinstance(source, bytes):
            name = name or str(source)
            source = read_image_bytes(source, self.limits)
        pre = self.encoder.preprocess
        img = load_image(
            source, limits=self.limits, name=name, draft_size=(pre.resize_size, pre.resize_size)
        )
        vec: NDArray[np.float32] = self.encoder.encode_batch(pre(img)[None])[0]
        return vec

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
        gone = np.asarray(exclude, dtype=np.int64) if len(exclude) else None
        allowed = None
        if filters is not None and not filters.is_empty() and not Scalars.covers(filters):
            allowed, filters = self.store.filter_rowids(filters), None  # the store cannot
        scores, ids, plan = self.index.search(np.atleast_2d(queries), k, filters, allowed, gone)
        self.last_plan = plan
        return [
            [(int(i), float(s)) for s, i in zip(row_s, row_i, strict=True) if i >= 0]
            for row_s, row_i in zip(scores, ids, strict=True)
        ]

    def results(self, hits: Sequence[tuple[int, float]]) -> list[Result]:
        items = {it.rowid: it for it in self.store.get_many([r for r, _ in hits])}
        return [Result(items[r], s) for r, s in hits if r in items]

    def search_vector(
        self,
        query: NDArray[np.float32],
        k: int = 10,
        filters: Filters | None = None,
        exclude: Sequence[int] = (),
    ) -> list[Result]:
        return self.results(self.search_vectors(query[None], k, filters, exclude)[0])

    def search_image(
        self, source: ImageSource, k: int = 10, filters: Filters | None = None
    ) -> list[Result]:
        """Look-alikes of a photo (path or bytes)."""
        return self.search_vector(self.embed(source), k, filters)

    def similar(self, item_id: str, k: int = 10, filters: Filters | None = None) -> list[Result]:
        """"More like this": nearest items to a catalog item, the item itself excluded."""
        rowid = self.store.rowid_of(item_id)
        return self.search_vector(self.vector_of(item_id), k, filters, exclude=[rowid])
