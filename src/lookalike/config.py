"""The one Settings object. Every knob lives here; values come from LOOKALIKE_* env vars."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "lookalike"


class Settings(BaseSettings):
    """Configuration of a lookalike catalog, its encoder, search and server."""

    model_config = SettingsConfigDict(env_prefix="LOOKALIKE_", extra="ignore")

    # where things live
    catalog_dir: Path = Field(Path("catalog"), description="Catalog folder (SQLite + index).")
    cache_dir: Path = Field(
        default_factory=_default_cache_dir, description="Exported ONNX models and feature caches."
    )

    # encoder
    model: str = Field(
        "lookalike-fashion-int8",
        description="Encoder name or path to an .onnx file. The default is the trained fashion "
        "embedding (issue 4: held-out clothing P@10 0.74 vs 0.58 for ImageNet lite0, every "
        "product-sample check above lite0) quantised to int8; `efficientnet-lite0-int8` is the "
        "plain ImageNet backbone, about 25 % faster.",
    )
    batch_size: int = Field(
        4,
        ge=1,
        le=1024,
        description="Images per model run when encoding many. The int8 models run 5-10 % "
        "faster per image in batches of 4-8 than of 32 on one thread (fp32: same at 8 and 32); "
        "after a decoded chunk, batches of 4 spent 6.8-6.9 ms CPU per photo, of 8 7.1.",
    )
    chunk_size: int = Field(
        32,
        ge=1,
        le=4096,
        description="Images a batch-encode worker decodes before running the model on them "
        "(in batches of `batch_size`): fewer switches between decoding and inference, each of "
        "which evicts the other's data from the core's caches (7.3 → 6.8 ms CPU per photo).",
    )
    intra_op_threads: int = Field(0, ge=0, description="ONNX Runtime threads; 0 = all cores.")
    decode_threads: int = Field(
        2, ge=1, le=64, description="Batch encode workers (decode + one-thread inference each)."
    )

    # image safety
    max_image_pixels: int = Field(40_000_000, ge=1, description="Pixel cap per image.")
    max_image_bytes: int = Field(30 * 1024 * 1024, ge=1, description="Byte cap per image file.")

    # ingest
    commit_every: int = Field(64, ge=1, description="Items per SQLite transaction at ingest.")

    # search
    vector_store: str = Field(
        "embedded",
        description="Where vectors are stored and searched: 'embedded' (memory-mapped files "
        "in the catalog folder, shared by every process) or "
        "'milvus://[USER:PASSWORD@]HOST:PORT[/DATABASE][?prefix=P&index=hnsw|flat&ef=256"
        "&shards=1&timeout=10]' (a Milvus 2.3+ server, one collection per catalog; needs the "
        "milvus extra). See docs/scaling.md.",
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
    ivf_lists: int = Field(
        0, ge=0, le=1_000_000,
        description="Inverted lists of a large catalog; 0 = about 2·sqrt(items).",
    )
    ivf_probe: int = Field(
        16, ge=1, le=100_000,
        description="Lists a search reads (the nearest to the query): more is slower and "
        "misses fewer neighbours. A filter keeping a share s of the catalog reads the nearest "
        "lists holding kept items until it has 1/sqrt(s) times as many kept items to score.",
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
    mmr_lambda: float = Field(
        0.8, ge=0, le=1, description="MMR: 1 = pure relevance, lower = more diverse results."
    )
    near_duplicate_cos: float = Field(
        0.95, gt=0, le=1, description="Cosine at or above which two results are one item."
    )
    colour_weight: float = Field(
        0.1, ge=0, le=1, description="How much garment colour counts against shape and style."
    )
    rocchio_gamma: float = Field(0.5, ge=0, le=5, description="Weight of negative examples.")
    steer_scale: float = Field(
        0.6, ge=0, le=10, description="Length of an attribute direction at strength 1."
    )
    profile_distance: float = Field(
        0.35, gt=0, le=2, description="Cosine distance that splits a style profile's prototypes."
    )
    auto_tag: bool = Field(True, description="Tag colour (and trained attributes) at ingest.")
    password_min_length: int = Field(8, ge=1, le=128)

    # server
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    upload_max_bytes: int = Field(10 * 1024 * 1024, ge=1, description="Largest upload (bytes).")
    admin_key_hash: str | None = Field(
        None, description="argon2 hash of the admin API key; catalog writes need the key."
    )
    session_cookie: str = Field("lookalike_session", description="Cookie holding the session.")
    cookie_secure: bool = Field(False, description="Send the session cookie over HTTPS only.")
    profile_max_photos: int = Field(12, ge=1, le=100, description="Photos per profile search.")
    api_max_k: int = Field(100, ge=1, le=1000, description="Most results one request may ask.")
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

    @property
    def models_dir(self) -> Path:
        return self.cache_dir / "models"
