"""The one Settings object. Every knob lives here; values come from LOOKALIKE_* env vars."""

from __future__ import annotations

import os
import re
from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "lookalike"


class Settings(BaseSettings):
    """Configuration of a lookalike catalog, its encoder, search and server."""

    model_config = SettingsConfigDict(env_prefix="LOOKALIKE_", extra="ignore")

    # where things live
    catalog_dir: Path = Field(Path("catalog"), description="Catalog folder (SQLite + index).")
    database_url: str | None = Field(
        None, max_length=2000,
        description="Where items, users and likes are stored: None = catalog.sqlite in the "
        "catalog folder; 'postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?schema=NAME]' = "
        "a PostgreSQL server (needs the postgres extra), one schema per catalog (default "
        "lookalike_ + the catalog folder's name), shared by every process and machine that "
        "names it. See docs/postgresql.md.",
    )
    cache_dir: Path = Field(
        default_factory=_default_cache_dir, description="Exported ONNX models and feature caches."
    )

    # encoder
    model: str = Field(
        "lookalike-fashion-int8",
        description="Encoder of new catalogs: a registered name (`lookalike.available()`) or "
        "the path of an .onnx file with its model card. The default is the trained fashion "
        "embedding in int8; `efficientnet-lite0-int8` is the plain ImageNet backbone (faster, "
        "less accurate on clothes). An existing catalog keeps the model it was built with.",
    )
    batch_size: int = Field(
        4,
        ge=1,
        le=1024,
        description="Images per model run when encoding many (ingest, re-embedding). 1 to "
        "1024; small batches suit one-thread inference best.",
    )
    chunk_size: int = Field(
        32,
        ge=1,
        le=4096,
        description="Images a batch-encode worker decodes before running the model on them "
        "in batches of `batch_size` (fewer switches between decoding and inference). 1 to "
        "4096; at least `batch_size` is used.",
    )
    intra_op_threads: int = Field(
        0, ge=0, description="ONNX Runtime threads of one-photo encoding and exact search; "
        "0 = one per core."
    )
    decode_threads: int = Field(
        2, ge=1, le=64, description="Batch encode workers (decode + one-thread inference each)."
    )

    # where ingest and re-embedding decode and encode photos (issue 19; docs/guide/ray.md)
    engine: Literal["local", "ray"] = Field(
        "local",
        description="Where an ingest (and a re-embedding's `encode_stored`) decodes and encodes "
        "photos: `local` (this machine's cores) or `ray` (a Ray cluster through Ray Data; "
        "`pip install 'lookalike[ray]'`). Validation, dedupe, the reject report, progress "
        "and resume are the same.",
    )
    ray_address: str | None = Field(
        None, max_length=500,
        description="Ray cluster to connect to (`HOST:PORT` of its head, or `auto`); unset: "
        "$RAY_ADDRESS, else a local Ray started for the run and stopped after it.",
    )
    ray_actors: int = Field(
        0, ge=0, le=10_000,
        description="Encoder actors (each holds one ONNX model); 0 = as many as the cluster's "
        "nodes have room for at `ray_cpus_per_actor` each.",
    )
    ray_cpus_per_actor: float = Field(
        0.75, gt=0, le=64,
        description="CPUs Ray reserves per encoder actor (fractions allowed; its ONNX model "
        "runs max(1, int(x)) threads). Below 1, a node's cores are never all claimed by "
        "actors. 0 < x <= 64.",
    )
    ray_batch_size: int = Field(
        32, ge=1, le=4096,
        description="Photos per Ray Data batch: an actor decodes them, then encodes them in "
        "model batches of `batch_size`. 1 to 4096.",
    )
    ray_read: Literal["paths", "bytes"] = Field(
        "paths",
        description="How photos reach the actors: `paths` (each actor reads the files: every "
        "node must see the images folder at the same path, e.g. a shared file system) or "
        "`bytes` (this process reads them and ships their bytes through Ray's object store, "
        "a window of up to 256 MiB at a time: no shared folder needed, the driver's disk and "
        "network bound the speed).",
    )
    ray_retries: int = Field(
        3, ge=0, le=100,
        description="Times Ray restarts an encoder actor that died (a killed worker, a lost "
        "node) and retries its batches before the run fails. 0 to 100.",
    )

    # image safety
    max_image_pixels: int = Field(
        40_000_000, ge=1, description="Largest image in pixels (width × height); larger ones "
        "are rejected before decoding."
    )
    max_image_bytes: int = Field(
        30 * 1024 * 1024, ge=1, description="Largest image file in bytes; larger ones are "
        "rejected before reading."
    )

    # ingest
    commit_every: int = Field(
        64, ge=1, description="Items per database transaction at ingest: a killed ingest loses "
        "at most this many (a rerun adds them)."
    )

    duplicates: Literal["reject", "flag", "keep"] = Field(
        "reject",
        description="What ingest and `POST /items` do with a repost of an item already in the "
        "catalog (the same photo resized, recompressed, cropped by a few percent or mirrored): "
        "`reject` refuses it, naming the original (rejected.csv, HTTP 409); `flag` adds it "
        "with `duplicate_of` set to the original's id; `keep` adds it unchecked. Byte-identical "
        "photos are always skipped.",
    )
    duplicate_hash_bits: int = Field(
        16, ge=0, le=32,
        description="A repost's 64-bit perceptual hash (or its mirror's) differs from the "
        "original's in at most this many bits (0 to 32; more catches harder crops and costs "
        "more cosine checks).",
    )
    duplicate_cos: float = Field(
        0.88, ge=0, le=1,
        description="A repost's embedding has at least this cosine with the original's, plus "
        "`duplicate_cos_per_bit` for each bit their hashes differ in (0 to 1; higher misses "
        "more recompressed, mirrored or cropped reposts, lower takes a different garment on "
        "the same backdrop for a repost).",
    )
    duplicate_cos_per_bit: float = Field(
        0.008, ge=0, le=0.1,
        description="The cosine a repost needs rises by this much for each bit its perceptual "
        "hash differs from the original's (0 to 0.1).",
    )

    # search
    vector_store: str = Field(
        "embedded",
        description="Where vectors are stored and searched: 'embedded' (memory-mapped files "
        "in the catalog folder, shared by every process) or "
        "'milvus://[USER:PASSWORD@]HOST:PORT[/DATABASE][?prefix=P&index=hnsw|flat&ef=256"
        "&shards=1&timeout=10]' (a Milvus 2.3+ server, one collection per catalog; needs the "
        "milvus extra), 'pgvector[?index=hnsw|flat&ef=100&filtered_ef=400]' (a table in "
        "the catalog's PostgreSQL database, LOOKALIKE_DATABASE_URL) or "
        "'postgresql://USER@HOST:PORT/DB[?schema=public&index=...&ef=...]' (another "
        "PostgreSQL server); both need the pgvector 0.8+ extension and the postgres extra. "
        "See docs/scaling.md and docs/postgresql.md.",
    )
    exact_max_items: int = Field(
        50_000, ge=0,
        description="Catalogs up to this size are searched exactly (every item scored); "
        "larger ones through inverted lists (IVF) over their int8 rows.",
    )
    filter_exact_max: int = Field(
        20_000, ge=0,
        description="Filters keeping at most this many items search exactly over just those.",
    )
    index_code_dim: int = Field(
        512, ge=0, le=8192,
        description="Width of the int8 codes a clustered catalog's searches score first, "
        "when its vectors are wider: each vector's projection onto the catalog's principal "
        "directions (learnt when it is clustered), 4-5 times fewer bytes to hold and read at "
        "the default model's 2,624 dims; the best rows are then scored at full width. "
        "0 = full-width codes. Takes effect at a catalog's next compaction or rebuild.",
    )
    index_rescore: int = Field(
        16, ge=1, le=10_000,
        description="Rows a search of a catalog with narrower codes (`index_code_dim`) scores "
        "at full width per 10 results, at least: the best by the narrow codes, then more (up "
        "to 4 times as many) while the narrow codes' error, measured on those, leaves further "
        "rows within reach. Each row not in the kernel's page cache is one read from the "
        "disk: more is slower until the rows are cached, and misses fewer neighbours.",
    )
    ivf_lists: int = Field(
        0, ge=0, le=1_000_000,
        description="Inverted lists of a large catalog when it is clustered; 0 = about "
        "2·sqrt(items). Lists past twice the mean size are split as the catalog grows.",
    )
    ivf_probe: int = Field(
        0, ge=0, le=100_000,
        description="Lists an unfiltered search reads (the nearest to the query); 0 = as many "
        "as hold about `ivf_rows` rows. More is slower and misses fewer neighbours.",
    )
    ivf_rows: int = Field(
        4096, ge=1, le=10_000_000,
        description="Rows an unfiltered search scores when `ivf_probe` is 0: the nearest lists "
        "until they hold this many. A filter keeping a share s of the catalog first scores "
        "1/sqrt(s) times as many kept rows, then every further list whose centre score plus "
        "1.1 times the largest gap seen between a read list's best kept score and its centre "
        "score reaches the k-th best score found (up to 8 times the first kept rows). More "
        "is slower and misses fewer neighbours.",
    )

    # taste: swipes, recommendation, attributes (issue 5)
    swipe_alpha: float = Field(
        0.3, gt=0, le=1, description="Swipe feed: weight of each new swipe in the preference."
    )
    swipe_beta: float = Field(
        0.5, ge=0, le=5, description="Swipe feed: weight of a dislike relative to a like."
    )
    feed_exploration: float = Field(
        0.1, ge=0, le=1, description="Share of feed items drawn beyond the top of the taste."
    )
    feed_attribute_weight: float = Field(
        0.5, ge=0, le=5,
        description="Swipe feed: weight of the user's like rates of an item's category and colour "
        "(given or predicted) in its taste score; 0 = embeddings only.",
    )
    feed_concurrency: int = Field(
        1, ge=1, le=64,
        description="Swipe feed: feed pages a process computes at once, each on one core "
        "(k-means, the per-user classifier, ranking); more wait their turn. 1 to 64.",
    )
    diversity: float = Field(
        0.0, ge=0, le=1,
        description="Default diversity of every query's results (MMR): each result is ranked by "
        "its match − diversity × its cosine to the closest result above it, and above 0 "
        "near-duplicates are collapsed; 0 = closest first.",
    )
    near_duplicate_cos: float = Field(
        0.97, gt=0, le=1,
        description="Cosine at or above which two results are one item (collapsed when a query "
        "asks for diversity, and in the swipe feed). 0 to 1; lower collapses more reposts but "
        "also different garments photographed on the same backdrop (see the duplicates guide).",
    )
    colour_weight: float = Field(
        0.1, ge=0, le=1,
        description="Default \"match colour\" of every query: match = (1 − w)·cosine + "
        "w·palette overlap with the query's garment colours; 0 = shape and style only.",
    )
    rocchio_gamma: float = Field(0.5, ge=0, le=5, description="Weight of negative examples.")
    steer_scale: float = Field(
        0.6, ge=0, le=10, description="Length of an attribute direction at strength 1."
    )
    profile_distance: float = Field(
        0.35, gt=0, le=2, description="Cosine distance that splits a style profile's prototypes."
    )
    auto_tag: bool = Field(
        True, description="Tag colour (and trained attributes) at ingest (the CLI, the server, "
        "and a catalog opened with `taggers=lookalike.attributes.default_taggers`)."
    )
    tag_attributes: list[str] = Field(
        ["category", "pattern", "usage", "gender", "department", "season", "sub_category",
         "style", "occasion", "material", "fit"],
        description="Labelled attributes that get a tagger trained on the catalog's own labels "
        "(`lookalike tag`), a filter (`-f usage=Formal`) and steering directions "
        "(`usage:Formal`): item columns (category, department) or extra metadata columns. "
        "Ones without enough labels (2+ values with 5+ items each) are skipped. A JSON list in "
        "the environment: LOOKALIKE_TAG_ATTRIBUTES='[\"usage\", \"gender\"]'.",
    )
    text_max_chars: int = Field(
        200, ge=1, le=2000,
        description="Longest search text (words of `search --text`, the search box); longer "
        "is refused.",
    )
    text_steer_strength: float = Field(
        0.8, ge=0, le=1,
        description="Steering strength of an appearance word (colour, pattern, usage...) in a "
        "search with words: beside a photo it steers the photo query; alone it ranks the items "
        "the words' filters keep (`not red`: the same, negative).",
    )
    tag_min_confidence: float = Field(
        0.5, ge=0, le=1,
        description="A trained tagger fills an attribute only when its top class has at least "
        "this probability (the tag's confidence); below it the item stays untagged.",
    )
    password_min_length: int = Field(
        8, ge=1, le=128, description="Shortest password an account may have (1 to 128)."
    )

    # server
    host: str = Field(
        "127.0.0.1", description="Address `lookalike serve` listens on: 127.0.0.1 = this "
        "machine only, 0.0.0.0 = every interface."
    )
    port: int = Field(8000, ge=1, le=65535, description="TCP port `lookalike serve` listens on.")
    upload_max_bytes: int = Field(
        10 * 1024 * 1024, ge=1, le=1024**3,
        description="Largest upload in bytes: one photo, or all the photos of a profile "
        "search together (a request body may add 64 KiB of form fields).",
    )
    copy_images: bool = Field(
        False, description="Ingest copies each photo into the catalog folder (`images/`), so "
        "the folder holds everything it needs and can be moved or restored elsewhere; off: "
        "photos are read from where they were ingested."
    )
    bulk_max_rows: int = Field(
        1000, ge=1, le=100_000,
        description="Rows one bulk upsert (`POST /items/bulk`) may hold (1 to 100,000); its "
        "photos count against `upload_max_bytes` together.",
    )
    admin_key_hash: str | None = Field(
        None, description="argon2 hash of the admin API key; catalog writes need the key."
    )
    session_cookie: str = Field("lookalike_session", description="Cookie holding the session.")
    cookie_secure: bool = Field(
        False, description="Send the session cookie over HTTPS only (and HSTS with answers)."
    )
    trusted_proxies: str = Field(
        "", max_length=2000,
        description="Reverse proxies whose X-Forwarded-For names the client (comma-separated "
        "addresses or networks, e.g. 127.0.0.1); empty: the connecting address is the client. "
        "Behind a proxy, set it: rate limits are per client.",
    )
    profile_max_photos: int = Field(12, ge=1, le=100, description="Photos per profile search.")
    max_results: int = Field(
        1000, ge=1, le=10_000,
        description="Deepest rank a query's pages reach (offset + k stays within it): the "
        "results in relevance order, each page a slice of one ranking (none repeats or skips).",
    )
    sort_depth: int = Field(
        200, ge=1, le=10_000,
        description="Look-alikes a sorted query (price, sustainability, rating...) or one with "
        "diversity orders: the closest this many, so a sorted list is still of look-alikes; "
        "their pages stop there (never past max_results).",
    )
    base_currency: str = Field(
        "EUR", pattern=r"^[A-Z]{3}$",
        description="ISO 4217 code prices are converted to (with the imported exchange rates) "
        "for price filters and sorting. One per catalog: opening it with another converts it.",
    )
    search_processes: int | None = Field(
        None, ge=0, le=64,
        description="Processes the server searches photos in, each with its own copy of the "
        "model (the vector files are shared, see lookalike.api.cpu); 0 = threads of the "
        "server process. None: "
        "one per core under `lookalike serve` (on 2+ cores), threads in an embedded app.",
    )
    search_concurrency: int = Field(
        0, ge=0, le=256, description="Photos the server encodes at once; 0 = one per core."
    )

    # unauthenticated traffic: guests, sessions, password checks (issue 17)
    guest_ttl: timedelta = Field(
        timedelta(days=30), ge=timedelta(minutes=1), le=timedelta(days=3650),
        description="A guest with no request for this long is deleted with its swipes, likes "
        "and feed (seconds, or ISO 8601 such as P30D). 1 minute to 10 years.",
    )
    session_ttl: timedelta = Field(
        timedelta(days=30), ge=timedelta(minutes=1), le=timedelta(days=3650),
        description="An account's session unused for this long expires; the account and its "
        "data stay (seconds or ISO 8601). 1 minute to 10 years.",
    )
    sessions_per_user: int = Field(
        10, ge=1, le=1000, description="Sessions an account keeps; a new login ends the oldest."
    )
    guest_max: int = Field(
        1_000_000, ge=1, le=1_000_000_000,
        description="Most guests kept: beyond it the cleanup deletes the least recently seen.",
    )
    cleanup_interval: timedelta = Field(
        timedelta(minutes=10), ge=timedelta(seconds=1), le=timedelta(days=1),
        description="How often the server deletes expired guests and sessions (and gives the "
        "memory its allocator holds free back to the system). 1 s to 1 day.",
    )
    requests_per_minute: float = Field(
        300.0, gt=0, le=1_000_000,
        description="Requests a client (IP address; IPv6 by /64) may make per minute after a "
        "burst of `requests_burst` (static files and item photos aside); beyond that 429 with "
        "Retry-After, before any other work. 0 < x <= 1,000,000.",
    )
    requests_burst: int = Field(
        200, ge=1, le=1_000_000, description="Requests a client may make at once before "
        "`requests_per_minute` applies."
    )
    auth_failures_per_minute: float = Field(
        6.0, gt=0, le=10_000,
        description="Failed logins and wrong admin keys a client (IP address; IPv6 by /64) may "
        "make per minute after a burst of `auth_failures_burst`; beyond that the answer is 429 "
        "with Retry-After, before any password hashing. 0 < x <= 10,000.",
    )
    auth_failures_burst: int = Field(
        5, ge=1, le=10_000, description="Failed logins / admin keys a client may make at once."
    )
    new_guests_per_minute: float = Field(
        30.0, gt=0, le=100_000,
        description="Guests one client may create per minute (on its first write) after a "
        "burst of `new_guests_burst`; beyond that 429. 0 < x <= 100,000.",
    )
    new_guests_burst: int = Field(
        60, ge=1, le=100_000, description="Guests one client may create at once before "
        "`new_guests_per_minute` applies."
    )
    new_accounts_per_minute: float = Field(
        1.0, gt=0, le=10_000,
        description="Accounts one client may create per minute after a burst of "
        "`new_accounts_burst` (each costs an argon2 hash and a permanent row).",
    )
    new_accounts_burst: int = Field(
        10, ge=1, le=10_000, description="Accounts one client may create at once before "
        "`new_accounts_per_minute` applies."
    )
    rate_limit_clients: int = Field(
        10_000, ge=16, le=10_000_000,
        description="Clients each rate limiter remembers (least recently seen forgotten "
        "first): bounds the limiters' memory. 16 to 10 million.",
    )
    hash_concurrency: int = Field(
        2, ge=1, le=64,
        description="argon2 computations (password and admin key checks, ~64 MiB and 0.1-0.3 s "
        "each) the server runs at once; more wait. 1 to 64.",
    )
    hashes_per_minute: float = Field(
        60.0, gt=0, le=100_000,
        description="argon2 computations the server runs per minute for all clients together "
        "(after a burst of 5): bounds the CPU that password checks take from searches; more "
        "wait in the queue. 0 < x <= 100,000.",
    )
    hash_queue: int = Field(
        64, ge=0, le=10_000,
        description="argon2 computations that may wait for a slot; beyond that the answer is "
        "503 with Retry-After. 0 to 10,000.",
    )

    @field_validator("guest_ttl", "session_ttl", "cleanup_interval", mode="before")
    @classmethod
    def _seconds(cls, value: object) -> object:
        """A duration as plain seconds (`LOOKALIKE_GUEST_TTL=3600`) as well as ISO 8601."""
        if isinstance(value, str):
            try:
                return timedelta(seconds=float(value))
            except ValueError:
                return value
        return value
    @field_validator("tag_attributes")
    @classmethod
    def _attribute_names(cls, names: list[str]) -> list[str]:
        for name in names:
            if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{0,39}", name):
                raise ValueError(f"{name!r} is not an attribute name (a letter, then letters, "
                                 "digits or _; at most 40)")
        if len(names) > 20:
            raise ValueError("at most 20 attributes")
        return list(dict.fromkeys(names))

    @field_validator("database_url", mode="before")
    @classmethod
    def _no_empty_url(cls, value: object) -> object:
        """An empty LOOKALIKE_DATABASE_URL means the default (SQLite)."""
        return None if isinstance(value, str) and not value.strip() else value

    @property
    def models_dir(self) -> Path:
        return self.cache_dir / "models"
