"""Vector search: the vector-store contract, the embedded store, exact search and its scans."""

from lookalike.index.backends import open_vector_store
from lookalike.index.base import Ids, Matrix, VectorIndex, top_k
from lookalike.index.embedded import EmbeddedStore
from lookalike.index.exact import ExactIndex
from lookalike.index.scan import Scanner
from lookalike.index.vector_store import (
    Scalars,
    SearchPlan,
    SearchResult,
    VectorSource,
    VectorStore,
    VectorStoreError,
)

__all__ = [
    "EmbeddedStore",
    "ExactIndex",
    "Ids",
    "Matrix",
    "Scalars",
    "Scanner",
    "SearchPlan",
    "SearchResult",
    "VectorIndex",
    "VectorSource",
    "VectorStore",
    "VectorStoreError",
    "open_vector_store",
    "top_k",
]
