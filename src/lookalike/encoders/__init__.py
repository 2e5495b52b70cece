"""Image encoders by name. Importing this package registers every built-in encoder."""

from lookalike.encoders import efficientnet, fake, quantized, trained
from lookalike.encoders.base import Encoder, ModelCard, Preprocess, Vectors, l2_normalise
from lookalike.encoders.lookup import available, create
from lookalike.encoders.onnx import OnnxEncoder
from lookalike.encoders.pipeline import EncodedBatch, encode_stream
from lookalike.encoders.registry import register

__all__ = [
    "EncodedBatch",
    "Encoder",
    "ModelCard",
    "OnnxEncoder",
    "Preprocess",
    "Vectors",
    "available",
    "create",
    "efficientnet",
    "encode_stream",
    "fake",
    "l2_normalise",
    "quantized",
    "register",
    "trained",
]
