"""Vector indexes: one contract, an exact reference and FAISS HNSW, and the catalog's index."""

from lookalike.index.base import Ids, Matrix, VectorIndex, top_k
from lookalike.index.catalog_index import CatalogIndex, SearchPlan
from lookalike.index.exact import ExactIndex
from lookalike.index.hnsw import HnswIndex
from lookalike.index.scan import Scanner

__all__ = [
    "CatalogIndex",
    "ExactIndex",
    "HnswIndex",
    "Ids",
    "Matrix",
    "Scanner",
    "SearchPlan",
    "VectorIndex",
    "top_k",
]
