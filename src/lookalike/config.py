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
    model: str = Field("efficientnet-lite0", description="Encoder name or path to an .onnx file.")
    batch_size: int = Field(32, ge=1, le=1024)
    intra_op_threads: int = Field(0, ge=0, description="ONNX Runtime threads; 0 = all cores.")
    decode_threads: int = Field(2, ge=1, le=64, description="Image decoding threads.")

    # image safety
    max_image_pixels: int = Field(40_000_000, ge=1, description="Pixel cap per image.")
    max_image_bytes: int = Field(30 * 1024 * 1024, ge=1, description="Byte cap per image file.")

    # ingest
    commit_every: int = Field(64, ge=1, description="Items per SQLite transaction at ingest.")

    # search
    exact_max_items: int = Field(
        50_000, ge=0, description="Catalogs up to this size are searched exactly (no ANN)."
    )
    filter_exact_max: int = Field(
        20_000, ge=0, description="Filters keeping at most this many items use exact search."
    )
    hnsw_m: int = Field(32, ge=4)
    hnsw_ef_construction: int = Field(200, ge=8)
    hnsw_ef_search: int = Field(128, ge=8)

    # server
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    upload_max_bytes: int = Field(10 * 1024 * 1024, ge=1, description="Largest upload (bytes).")
    admin_key_hash: str | None = Field(
        None, description="argon2 hash of the admin API key; catalog writes need the key."
    )

    @property
    def models_dir(self) -> Path:
        return self.cache_dir / "models"
