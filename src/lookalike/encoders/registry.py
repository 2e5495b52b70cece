"""Encoders by name, like timm's `create_model`: `create("efficientnet-lite0", settings)`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from lookalike.config import Settings
from lookalike.encoders.base import Encoder
from lookalike.errors import UnknownEncoderError

EncoderFactory = Callable[[Settings], Encoder]

_REGISTRY: dict[str, EncoderFactory] = {}


def register(name: str) -> Callable[[EncoderFactory], EncoderFactory]:
    """Decorator: register `factory` under `name`."""

    def deco(factory: EncoderFactory) -> EncoderFactory:
        _REGISTRY[name] = factory
        return factory

    return deco


def available() -> list[str]:
    """Names of every registered encoder."""
    return sorted(_REGISTRY)


def create(name: str, settings: Settings | None = None) -> Encoder:
    """Build the encoder registered as `name`, or load an ONNX model file at path `name`."""
    settings = settings or Settings()
    if name in _REGISTRY:
        return _REGISTRY[name](settings)
    path = Path(name)
    if path.suffix == ".onnx" and path.is_file():
        from lookalike.encoders.onnx import OnnxEncoder

        return OnnxEncoder.from_file(path, settings)
    raise UnknownEncoderError(
        f"no encoder named {name!r} and no .onnx file at that path; "
        f"registered encoders: {', '.join(available())}"
    )
