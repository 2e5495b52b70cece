"""The encode engine a `Settings` names (`Settings.engine`): this machine's cores
(`lookalike.catalog.ingest.LocalEngine`) or a Ray cluster
(`lookalike.catalog.ray_engine.RayEngine`, imported only when asked for: Ray is an extra)."""

from __future__ import annotations

from lookalike.catalog.ingest import EncodeEngine, LocalEngine
from lookalike.config import Settings


def engine_for(settings: Settings) -> EncodeEngine:
    """The encode engine `settings.engine` names, configured by `settings`."""
    if settings.engine == "ray":
        from lookalike.catalog.ray_engine import RayEngine

        return RayEngine.from_settings(settings)
    return LocalEngine(settings.batch_size, settings.chunk_size, settings.decode_threads)
