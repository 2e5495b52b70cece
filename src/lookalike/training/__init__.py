"""Metric-learning heads on cached backbone features, folded with the backbone into one ONNX
model (see `lookalike.encoders.trained`). Needs the `train` extra (torch,
pytorch-metric-learning)."""

from lookalike.training.head import LOSSES, HeadConfig, build_head, train_head
from lookalike.training.loop import EpochReport
from lookalike.training.pipeline import Combine, TrainResult, combine, train_fashion

__all__ = [
    "LOSSES",
    "Combine",
    "EpochReport",
    "HeadConfig",
    "TrainResult",
    "build_head",
    "combine",
    "train_fashion",
    "train_head",
]
