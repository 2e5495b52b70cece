"""Encoders by name, like timm's `create_model`: `create("efficientnet-lite0", settings)` builds
a registered encoder, a model trained into the user models folder or an ONNX file."""

from __future__ import annotations

from pathlib import Path

from lookalike.config import Settings
from lookalike.encoders.base import Encoder
from lookalike.encoders.onnx import OnnxEncoder
from lookalike.encoders.registry import registered
from lookalike.encoders.trained import user_model_factory, user_models, user_models_dir
from lookalike.errors import UnknownEncoderError


def available(settings: Settings | None = None) -> list[str]:
    """Names of every registered encoder and, given `settings`, of the models trained into its
    user models folder (`lookalike train`)."""
    if settings is None:
        return sorted(registered())
    trained = user_models(settings)
    return sorted({*registered(), *trained, *(f"{name}-int8" for name in trained)})


def create(name: str, settings: Settings | None = None) -> Encoder:
    """Build the encoder registered as `name`, or the model trained as `name` into the user
    models folder, or load an ONNX model file at path `name`."""
    settings = settings or Settings()
    factory = registered().get(name) or user_model_factory(name, settings)
    if factory is not None:
        return factory(settings)
    path = Path(name)
    if path.suffix == ".onnx" and path.is_file():
        return OnnxEncoder.from_file(path, settings)
    raise UnknownEncoderError(
        f"no encoder named {name!r}, no trained model of that name in "
        f"{user_models_dir(settings)} and no .onnx file at that path; "
        f"encoders: {', '.join(available(settings))}"
    )
