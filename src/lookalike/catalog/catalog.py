"""`Catalog`: the library's front door. One folder holds `catalog.sqlite` (items, embeddings,
the source of truth) and the vector store's files (`vectors/`, rebuilt from SQLite whenever
missing or damaged; or a Milvus server, see `lookalike.index.vector_store`). With
`Settings.database_url` the items, embeddings and users are in PostgreSQL instead (one schema
per catalog, `lookalike.catalog.database`); the folder keeps the vector store's files.

    from lookalike import Catalog, Settings, search_image
    from lookalike.attributes import default_taggers
    catalog = Catalog.open(Settings(catalog_dir="my-shop"), taggers=default_taggers)
    catalog.ingest(Path("photos"), Path("items.csv"))
    for hit in search_image(catalog, Path("query.jpg"), k=10):
        print(hit.item.title, hit.score)

The catalog stores and searches vectors; the rankings (look-alikes of a photo, "more like
this", colour and diversity) are `lookalike.recommend`'s, which builds on it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from lookalike.catalog.brands import BrandRatingsFile, normalise_brand, read_brand_ratings
from lookalike.catalog.database import PostgresTarget, postgres_target
from lookalike.catalog.duplicates import (
    DuplicateFinder,
    RepostCheck,
    hash_stored_photos,
    perceptual_hashes,
    repost_reason,
)
from lookalike.catalog.engines import engine_for
from lookalike.catalog.filters import LIST_FIELDS, Filters
from lookalike.catalog.imagefiles import StoredPaths, copy_image, image_file, stored_path
from lookalike.catalog.ingest import (
    EncodeEngine,
    IngestProgress,
    IngestReport,
    PixelTagger,
    VectorTagger,
    ingest,
)
from lookalike.catalog.rates import RatesFile, read_rates
from lookalike.catalog.schema import Item, ItemFields, ItemIn, ItemUpdate, Tag
from lookalike.catalog.sorting import SORTS
from lookalike.catalog.store import CatalogStore, NewItem
from lookalike.colour_names import canonical_colour
from lookalike.config import Settings
from lookalike.encoders import Encoder
from lookalike.encoders import create as create_encoder
from lookalike.errors import CatalogNotFoundError, ImageLoadError, LookalikeError
from lookalike.images import ImageLimits, ImageSource, content_hash, load_image, read_image_bytes
from lookalike.index import EmbeddedStore, Scalars, SearchPlan, VectorStore, open_vector_store

DB_FILE = "catalog.sqlite"
#: Up to this many sold items, a search that only leaves sold items out searches everything and
#: drops them from the hits (as it drops excluded items) instead of searching the rest as a
#: filtered subset: the unfiltered index stays in use while few items are sold.
SOLD_EXCLUDED_MAX = 256
#: Where a catalog's taggers come from (`Catalog.open(..., taggers=...)`, e.g.
#: `lookalike.attributes.default_taggers`): given the open catalog, the taggers to run on each
#: new photo's pixels and on its vector. The catalog asks again after a re-encoding (`reload`).
TaggerSource = Callable[["Catalog"], tuple[list[PixelTagger], list[VectorTagger]]]
#: Committed items an ingest hands the vector store at a time (at most this many vectors held
#: by the driver beyond the batch being committed: ~21 MB at 2,624 dimensions).
UPSERT_ITEMS = 2048


class DuplicateItemError(LookalikeError):
    """An item with that id or the very same image is already in the catalog."""

    def __init__(self, message: str, original_id: str | None = None) -> None:
        super().__init__(message)
        #: the item already in the catalog, when known (a repost's original)
        self.original_id = original_id


def database_of(settings: Settings) -> Path | PostgresTarget:
    """Where the catalog of `settings` keeps its items: its SQLite file, or its PostgreSQL
    schema when `settings.database_url` is set."""
    folder = Path(settings.catalog_dir)
    if settings.database_url:
        return postgres_target(settings.database_url, folder)
    return folder / DB_FILE


def open_store(settings: Settings, *, create: bool = True) -> CatalogStore:
    """The metadata store of the catalog of `settings`; `create=False` raises
    CatalogNotFoundError (naming the catalog folder) where there is none, creating nothing."""
    folder = Path(settings.catalog_dir)
    where = database_of(settings)
    if isinstance(where, Path):
        if not create and not where.is_file():
            raise CatalogNotFoundError(str(folder))
        return CatalogStore(where, settings.base_currency)
    try:
        return CatalogStore(where, settings.base_currency, create=create)
    except CatalogNotFoundError:
        raise CatalogNotFoundError(
            str(folder), f"its database {where.shown} holds no catalog"
        ) from None


def require_sqlite(settings: Settings, command: str) -> None:
    """LookalikeError when the catalog of `settings` is in PostgreSQL: `command` (check,
    repair, backup, restore) works on SQLite files; PostgreSQL has its own tools."""
    where = database_of(settings)
    if isinstance(where, PostgresTarget):
        raise LookalikeError(
            f"`lookalike {command}` works on a catalog's SQLite file, and this catalog is in "
            f"PostgreSQL ({where.shown}): use PostgreSQL's tools (pg_dump --schema "
            f"{where.schema} to back it up, pg_restore to restore it, pg_amcheck to check it)"
        )


def require_catalog(settings: Settings) -> None:
    """CatalogNotFoundError unless the catalog of `settings` exists (creating nothing)."""
    where = database_of(settings)
    if isinstance(where, Path):
        if not where.is_file():
            raise CatalogNotFoundError(str(settings.catalog_dir))
        return
    open_store(settings, create=False).close()


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
    index: VectorStore
    pixel_taggers: list[PixelTagger] = field(default_factory=list)
    vector_taggers: list[VectorTagger] = field(default_factory=list)
    taggers: TaggerSource | None = None  # where the taggers it gave came from (`use_taggers`)
    _given: tuple[list[PixelTagger], list[VectorTagger]] = field(
        default_factory=lambda: ([], []))  # the taggers `taggers` gave last
    _encoder: Encoder | None = None
    last_plan: SearchPlan | None = None
    _sync: threading.Lock = field(default_factory=threading.Lock)  # guards replacing `index`
    _generation: str | None = None  # the store's model_generation the index holds
    _reposts: DuplicateFinder | None = None  # the stored photos' hashes, for add_item
    _reposts_lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def open(
        cls, settings: Settings | None = None, encoder: Encoder | None = None, *,
        create: bool = True, taggers: TaggerSource | None = None,
    ) -> Catalog:
        """Open (or, unless `create` is False, create) the catalog in `settings.catalog_dir`.

        The encoder is the one the catalog was built with (recorded in it), else
        `settings.model`; it is loaded only when an image must be encoded. `create=False`
        raises `CatalogNotFoundError` where there is no catalog, and creates nothing.
        New photos are tagged by what `taggers` gives (`use_taggers`; e.g.
        `lookalike.attributes.default_taggers`: colour, and the trained attributes); without
        it, by no tagger.
        """
        settings = settings or Settings()
        folder = Path(settings.catalog_dir)
        store = open_store(settings, create=create)
        if encoder is not None:
            store.bind_model(encoder.name, encoder.dim)
        stored_dim = store.dim  # the stored vectors' length, even if the record is damaged
        if stored_dim is None:
            encoder = encoder or create_encoder(settings.model, settings)
            store.bind_model(encoder.name, encoder.dim)
            stored_dim = encoder.dim
        try:
            index = open_vector_store(settings, folder, stored_dim, store)
        except BaseException:
            store.close()
            raise
        catalog = cls(settings=settings, store=store, index=index, _encoder=encoder,
                      _generation=store.reread_model())
        if taggers is not None:
            catalog.use_taggers(taggers)
        return catalog

    def use_taggers(self, source: TaggerSource | None) -> None:
        """Tag new photos (ingest, `add_item`, `replace_image`) with the taggers `source` gives
        for this catalog, in place of those an earlier source gave (taggers put on
        `pixel_taggers` or `vector_taggers` by hand stay). Asked again after a re-encoding."""
        pixel, vector = source(self) if source is not None else ([], [])
        old_pixel, old_vector = self._given
        self.pixel_taggers[:] = [
            t for t in self.pixel_taggers if not any(t is o for o in old_pixel)] + pixel
        self.vector_taggers[:] = [
            t for t in self.vector_taggers if not any(t is o for o in old_vector)] + vector
        self.taggers, self._given = source, (pixel, vector)

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
            self._encoder = create_encoder(name, self.settings)
            self.store.bind_model(self._encoder.name, self._encoder.dim)
        return self._encoder

    @property
    def limits(self) -> ImageLimits:
        return ImageLimits(self.settings.max_image_pixels, self.settings.max_image_bytes)

    def __len__(self) -> int:
        return len(self.index)

    def info(self) -> dict[str, object]:
        store = self.index.describe()
        rates_base, rates = self.store.rates()
        return {
            "folder": str(self.settings.catalog_dir),
            "database": self.store.location,  # the file, or the server (no password) + schema
            "items": self.store.count(),
            "model": self.store.model_name,
            "dim": self.index.dim,
            "index": str(store["method"]),
            "vector_store": store,
            "sold": self.store.count(Filters(state=["sold"])),
            "brand_ratings": self.store.brand_rating_count(),
            "base_currency": self.store.base_currency,
            "rates": len(rates),
            "rates_base": rates_base,
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
        engine: EncodeEngine | None = None,
    ) -> IngestReport:
        """Bulk-add a folder of images (+ CSV/JSONL metadata); see `lookalike.catalog.ingest`.
        Photos are decoded and encoded by `engine`, by default the one the settings name
        (`Settings.engine`: local, or a Ray cluster).
        Reposts are checked as `settings.duplicates` says; stored photos without a perceptual
        hash (a catalog made before hashes were stored) are hashed first, once."""
        reposts = RepostCheck.from_settings(  # candidates' vectors from the mapped files
            self.settings,
            self.index.current_vectors if isinstance(self.index, EmbeddedStore) else None)
        if reposts.mode != "keep":
            self.hash_photos()
            self.store.sketch_vectors()  # (a catalog made before sketches were stored)
        # The vector store gets the committed items a chunk at a time while the ingest runs
        # (the driver holds at most one chunk of vectors, not the whole ingest's); the
        # embedded store appends them to its tail and compacts at most once, at the last.
        held_ids: list[int] = []
        held_vecs: list[NDArray[np.float32]] = []

        def upsert(compact: bool) -> None:
            ids = np.asarray(held_ids, dtype=np.int64)
            self.index.upsert(ids, np.concatenate(held_vecs), self.store.scalars_of(ids),
                              compact=compact)
            held_ids.clear()
            held_vecs.clear()

        def committed(rowids: list[int], vectors: NDArray[np.float32]) -> None:
            if held_ids and len(held_ids) + len(rowids) > UPSERT_ITEMS:
                upsert(compact=False)
            held_ids.extend(rowids)
            held_vecs.append(vectors)

        paths = StoredPaths(Path(self.settings.catalog_dir))
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
            engine=engine or engine_for(self.settings),
            report_path=report_path,
            progress=progress,
            pixel_taggers=self.pixel_taggers,
            vector_taggers=self.vector_taggers,
            on_batch=committed,
            columns=columns,
            place_image=lambda path, digest: self._place_image(paths, path, digest),
            reposts=reposts,
        )
        if held_ids:  # (a failed ingest's committed items: the next sync reads the change log)
            upsert(compact=True)
        return report

    def _place_image(self, paths: StoredPaths, path: Path, digest: str) -> str:
        """The image path to store for an ingested photo (`lookalike.catalog.imagefiles`):
        copied into the catalog folder when `settings.copy_images` is on (read again here, by
        the writer: the engine may have decoded it on another machine); relative to the
        folder when inside it. `path` is the engine's resolved path."""
        if self.settings.copy_images:
            data = read_image_bytes(path, self.limits, follow_symlinks=False)
            if content_hash(data) != digest:
                raise ImageLoadError(str(path), "the file changed during the ingest")
            return paths(copy_image(paths.root, data, digest, path.suffix))
        return paths(path, resolved=True)

    def image_file(self, item: Item) -> Path:
        """The file of the item's photo (a relative path inside the catalog folder, never
        outside it; see `lookalike.catalog.imagefiles`)."""
        return image_file(Path(self.settings.catalog_dir), item.image_path)

    def _encode_photo(
        self, item: ItemFields, image: bytes, name: str
    ) -> tuple[Image.Image, NDArray[np.float32], dict[str, Tag]]:
        """One photo decoded, its vector and the tags predicted for it (fields the item gives
        left out)."""
        size = self.encoder.preprocess.resize_size
        img = load_image(image, limits=self.limits, name=name, draft_size=(size, size))
        vector = self.encoder.encode_images([img])
        tags: dict[str, Tag] = {}
        for tagger in self.pixel_taggers:
            tags.update(tagger(img))
        for vtagger in self.vector_taggers:
            tags.update(vtagger(vector)[0])
        return img, vector, {k: t for k, t in tags.items() if not item.gives(k)}

    def replace_image(self, item_id: str, image: bytes, image_path: Path) -> Item:
        """Give item `item_id` the photo whose bytes are stored at `image_path` (the caller
        saves them): encoded, tagged again, and in the index at once under the item's new
        rowid. Its fields stay."""
        item = self.store.get(item_id)
        digest = content_hash(image)
        if digest == item.image_hash:
            return item
        if digest in self.store.known_keys()[1]:
            raise DuplicateItemError("the catalog already holds this exact image")
        img, vector, predicted = self._encode_photo(item, image, image_path.name)
        stored = stored_path(Path(self.settings.catalog_dir), image_path)
        new_item = NewItem(item_id, item, stored, digest, predicted,
                           phash=perceptual_hashes(img)[0], duplicate_of=item.duplicate_of)
        _, new = self.store.replace_image(item_id, new_item, vector)
        # the change log holds the old row's removal and the new row: the store applies both
        rowid = np.asarray([new], dtype=np.int64)
        self.index.upsert(rowid, vector, self.store.scalars_of(rowid))
        return self.store.get(item_id)

    def hash_photos(self) -> tuple[int, int]:
        """Give every stored photo without one its perceptual hash (catalogs made before
        hashes were stored); (hashed, unreadable). Reads and decodes those photos."""
        return hash_stored_photos(self.store, self.limits, self.encoder.preprocess.resize_size)

    def find_repost(
        self, img: Image.Image, vector: NDArray[np.float32]
    ) -> tuple[tuple[int, int], str | None, str]:
        """(perceptual hashes, original id or None, reason) of a decoded photo and its vector:
        which stored item it reposts, by the settings' thresholds."""
        hashes = perceptual_hashes(img)
        with self._reposts_lock:
            if self._reposts is None:
                self._reposts = RepostCheck.from_settings(self.settings).finder
            self._reposts.sync(self.store)
            match = self._reposts.find(hashes, vector, self.store)
        if match is None:
            return hashes, None, ""
        return hashes, match.original_id, repost_reason(match)

    def add_item(self, item: ItemIn, image: bytes, image_path: Path) -> Item:
        """Add one item whose image bytes are stored at `image_path` (the caller saves them).
        A repost of a stored item raises `DuplicateItemError` naming the original, or is
        flagged (`duplicate_of`), as `settings.duplicates` says."""
        digest = content_hash(image)
        self.refresh()  # another process may have re-encoded the catalog with another model
        ids, hashes = self.store.known_keys()
        if item.id is not None and item.id in ids:
            raise DuplicateItemError(f"an item with id {item.id!r} exists")
        if digest in hashes:
            raise DuplicateItemError("the catalog already holds this exact image")
        img, vector, predicted = self._encode_photo(item, image, image_path.name)
        mode = self.settings.duplicates
        phash, original, reason = (
            self.find_repost(img, vector[0]) if mode != "keep"
            else (perceptual_hashes(img), None, ""))
        if original is not None and mode == "reject":
            raise DuplicateItemError(f"this photo is a {reason}", original_id=original)
        stored = stored_path(Path(self.settings.catalog_dir), image_path)
        new = NewItem(item.id or digest[:16], item, stored, digest, predicted,
                      phash=phash[0], duplicate_of=original)
        self.add_items([new], vector)
        return self.store.get(new.id)

    def add_items(self, items: Sequence[NewItem], vectors: NDArray[np.float32]) -> list[int]:
        """Add items whose vectors are already computed (an import, a re-embedding, a
        benchmark): one SQLite transaction, then the vector store; returns their rowids."""
        vectors = np.asarray(vectors, dtype=np.float32).reshape(len(items), -1)
        if vectors.shape[1] != self.index.dim:
            raise ValueError(f"vectors are {vectors.shape[1]}-d, the catalog's {self.index.dim}")
        rowids = self.store.add(items, vectors)
        ids = np.asarray(rowids, dtype=np.int64)
        self.index.upsert(ids, vectors, self.store.scalars_of(ids))
        return rowids

    def update_item(self, item_id: str, change: ItemUpdate) -> Item:
        item = self.store.update(item_id, change)
        rowid = np.asarray([item.rowid], dtype=np.int64)
        self.index.set_fields(rowid, self.store.scalars_of(rowid))
        return item

    def import_brand_ratings(
        self, source: Path | bytes, name: str | None = None, *, replace: bool = False
    ) -> BrandRatingsFile:
        """Read a brand ratings file (`lookalike.catalog.brands`) and store its valid rows
        (`replace`: drop brands it does not rate). Rows with errors are reported in the
        returned file's `errors` and left out; the rest are stored even so."""
        parsed = read_brand_ratings(source, name)
        if parsed.ratings or replace:
            self.store.set_brand_ratings(parsed.ratings, replace=replace)
        return parsed

    def import_rates(
        self, source: Path | bytes, name: str | None = None, *, base: str | None = None
    ) -> RatesFile:
        """Read an exchange rates file (`lookalike.catalog.rates`; against `base`, by default
        the settings' base currency, unless it has a `base` column) and make it the catalog's
        rates, unless any row has an error: a partial rates table would silently drop prices
        from price filters, so nothing is stored then."""
        parsed = read_rates(source, name, base=base or self.settings.base_currency)
        if not parsed.errors:
            self.store.set_rates(parsed.rates, parsed.base)
        return parsed

    def delete_item(self, item_id: str) -> None:
        rowid = self.store.delete(item_id)
        self.index.remove(np.asarray([rowid], dtype=np.int64))

    def refresh(self) -> bool:
        """Bring the vector store in step with the database when another process (a second
        server worker, a CLI ingest) has changed items since; True if it changed anything.
        Costs two small reads when nothing changed, so every search calls it. A catalog
        re-encoded with another model (`lookalike reembed`) starts again from its vectors."""
        if self.store.get_meta("model_generation") != self._generation:
            with self._sync:
                if self.store.reread_model() != self._generation:
                    self._reload()
                    return True
        return self.index.sync()

    def reload(self) -> None:
        """Start again from the store's vectors and model: after a re-encoding with another
        model (`lookalike.catalog.reembed`, which calls it; other processes do at their next
        `refresh`)."""
        with self._sync:
            self._reload()

    def _reload(self) -> None:
        """`reload`, the caller holding `_sync`: a new index of the new width, the new encoder
        loaded when first needed, the taggers trained on the old vectors dropped."""
        generation = self.store.reread_model()
        old = self.index
        # the embedded store's files of another width are rebuilt; of the same width, the
        # change log carries every re-encoded vector
        self.index = open_vector_store(self.settings, Path(self.settings.catalog_dir),
                                       self.store.dim or 0, self.store)
        self._generation = generation
        with self._reposts_lock:  # its sketches describe the old vectors
            self._reposts = None
        old.close()
        if self._encoder is not None and self._encoder.name != self.store.model_name:
            self._encoder = None
        if self.taggers is not None:  # the probes trained on the old vectors are gone
            self.use_taggers(self.taggers)

    # -- reads -------------------------------------------------------------------------------

    def get(self, item_id: str) -> Item:
        return self.store.get(item_id)

    def items(
        self, filters: Filters | None = None, offset: int = 0, limit: int = 50,
        sort: str = "relevance",
    ) -> list[Item]:
        """Browse: the items `filters` keep (sold ones left out unless asked for) in `sort`'s
        order (`lookalike.catalog.sorting`; relevance = catalog order)."""
        if sort not in SORTS:
            raise LookalikeError(f"unknown sort {sort!r}; sorts: {', '.join(SORTS)}")
        return self.store.list(filters or Filters(), offset, limit, sort)

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
            keys: dict[str, Callable[[str], str]] = {"colour": canonical_colour,
                                                     "brand": normalise_brand}
            key = keys.get(name, str.lower)
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

    def notes(self, filters: Filters | None = None, sort: str = "relevance") -> list[str]:
        """Plain sentences on what a query's filters and sort cannot do: filter values no item
        has (`unknown_filter_values`) and prices without an exchange rate (`price_notes`)."""
        f = filters or Filters()
        unknown = [] if f.is_empty() else self.unknown_filter_values(f)
        return unknown + self.price_notes(f, sort)

    def price_notes(self, filters: Filters | None = None, sort: str = "relevance") -> list[str]:
        """Where prices are compared (a price filter or sort): a sentence per currency whose
        items cannot be converted to the base currency for want of an exchange rate, e.g.
        "3 items priced in JPY have no exchange rate to EUR: price filters leave them out and
        price sorts put them last (lookalike rates import)"."""
        f = filters or Filters()
        if f.price_min is None and f.price_max is None and not sort.startswith("price"):
            return []
        base = self.store.base_currency
        return [
            f"{n} item{'s' if n != 1 else ''} priced in {currency} "
            f"{'have' if n != 1 else 'has'} no exchange rate to {base}: price filters leave "
            f"{'them' if n != 1 else 'it'} out and price sorts put "
            f"{'them' if n != 1 else 'it'} last (lookalike rates import)"
            for currency, n in self.store.unconverted()
        ]

    def vector_of(self, item_id: str) -> NDArray[np.float32]:
        self.refresh()
        rowid = self.store.rowid_of(item_id)
        vecs = self.index.vectors(np.asarray([rowid], dtype=np.int64))
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
        """Rowids a filter keeps, or None when it keeps every item (no filter, and no sold
        item to leave out). None filters are `Filters()`: sold items are left out."""
        filters = filters or Filters()
        if filters.is_empty() and (filters.include_sold or not self.store.has_sold()):
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
        filters = filters or Filters()
        if filters.is_empty() and filters.hides_sold():
            sold = self.store.sold_rowids(SOLD_EXCLUDED_MAX + 1)
            if len(sold) <= SOLD_EXCLUDED_MAX:  # few: left out like excluded items
                filters = Filters(include_sold=True)
                exclude = [*exclude, *sold]
        allowed = None
        if not Scalars.covers(filters):  # a field the vector store does not hold: SQLite
            allowed, filters = self.store.filter_rowids(filters), None
        gone = np.asarray(exclude, dtype=np.int64) if len(exclude) else None
        scores, ids, plan = self.index.search(np.atleast_2d(queries), k, filters, allowed, gone)
        self.last_plan = plan
        return [
            [(int(i), float(s)) for s, i in zip(row_s, row_i, strict=True) if i >= 0]
            for row_s, row_i in zip(scores, ids, strict=True)
        ]

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
