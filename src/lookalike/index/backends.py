"""The vector store a `Settings` names (`Settings.vector_store`): the embedded default, Milvus
or pgvector; each backend is imported only when named (Milvus and pgvector need extras)."""

from __future__ import annotations

from pathlib import Path

from lookalike.config import Settings
from lookalike.index.vector_store import VectorSource, VectorStore, VectorStoreError

__all__ = ["open_vector_store"]


def open_vector_store(
    settings: Settings, folder: Path, dim: int, source: VectorSource
) -> VectorStore:
    """The catalog's vector store, as `settings.vector_store` names it: "embedded" (files in
    `folder`), "milvus://HOST:PORT" (a collection named after the catalog), "pgvector" or
    "postgresql://…" (a table named after the catalog)."""
    url = settings.vector_store.strip()
    if url == "embedded":
        from lookalike.index.embedded import EmbeddedStore

        return EmbeddedStore.open(folder, dim, source, settings)
    if url.startswith("milvus://"):
        try:
            from lookalike.index.milvus import MilvusStore
        except ImportError as exc:
            raise VectorStoreError(
                f"vector store {url!r}: the Milvus backend is not available ({exc})"
            ) from None
        store: VectorStore = MilvusStore.open(url, folder, dim, source, settings)
        return store
    if url.split("?")[0] == "pgvector" or url.startswith(("postgresql://", "postgres://")):
        from lookalike.index.pgvector import PgvectorStore

        pg_store: VectorStore = PgvectorStore.open(url, folder, dim, source, settings)
        return pg_store
    raise VectorStoreError(
        f"vector store {url!r}: expected 'embedded', 'milvus://HOST:PORT', 'pgvector' or "
        "'postgresql://USER@HOST:PORT/DATABASE'"
    )
