"""The built-in encoders' names: each encoder module `register`s its factory under a name
(`lookalike.encoders.lookup.create` builds one by name, like timm's `create_model`)."""

from __future__ import annotations

from collections.abc import Callable

from lookalike.config import Settings
from lookalike.encoders.base import Encoder

EncoderFactory = Callable[[Settings], Encoder]

_REGISTRY: dict[str, EncoderFactory] = {}


def register(name: str) -> Callable[[EncoderFactory], EncoderFactory]:
    """Decorator: register `factory` under `name`."""

    def deco(factory: EncoderFactory) -> EncoderFactory:
        _REGISTRY[name] = factory
        return factory

    return deco


def registered() -> dict[str, EncoderFactory]:
    """Every registered encoder's factory by name (a copy)."""
    return dict(_REGISTRY)
