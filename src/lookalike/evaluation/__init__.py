"""Honest evaluation: retrieval metrics, group splits, protocols (pairs, robustness), plots.

Every protocol returns a dict of named metrics (`"category/precision@10"`, ...); the CLI, the
benchmarks and the plots all read those names.
"""

from lookalike.evaluation.datasets import (
    LabelledImages,
    load_catalog,
    load_clothing_dataset,
    load_dataset,
    load_product_sample,
)
from lookalike.evaluation.features import cache_key, cached_features, encode_paths
from lookalike.evaluation.metrics import (
    classification_f1,
    majority_agreement,
    neighbours,
    pair_topk_accuracy,
    retrieval_metrics,
)
from lookalike.evaluation.splits import GroupSplit, group_split, load_or_create_split

__all__ = [
    "GroupSplit",
    "LabelledImages",
    "cache_key",
    "cached_features",
    "classification_f1",
    "encode_paths",
    "group_split",
    "load_catalog",
    "load_clothing_dataset",
    "load_dataset",
    "load_or_create_split",
    "load_product_sample",
    "majority_agreement",
    "neighbours",
    "pair_topk_accuracy",
    "retrieval_metrics",
]
