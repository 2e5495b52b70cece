"""How trained weights are committed: matrices and kernels as int8 with a float32 scale per
output row or channel (`pack_weights`), read back as float32 (`unpack_weights`). Trained heads,
whitening and compact projections (`lookalike.training`) and the models built from them
(`lookalike.encoders.trained`) share this format."""

from __future__ import annotations

import numpy as np


def pack_weights(state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Matrices and conv kernels → int8 with one float32 scale per output row / channel (4x
    smaller, so the committed weights stay under 5 MB); vectors stay float32."""
    out: dict[str, np.ndarray] = {}
    for key, value in state.items():
        w = np.asarray(value, dtype=np.float32)
        if w.ndim >= 2:
            rest = tuple(range(1, w.ndim))
            scale = np.maximum(np.abs(w).max(axis=rest, keepdims=True), 1e-12) / 127.0
            out[f"{key}::q"] = np.round(w / scale).astype(np.int8)
            out[f"{key}::scale"] = scale.astype(np.float32)
        else:
            out[key] = w
    return out


def unpack_weights(packed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Inverse of `pack_weights` (up to the int8 rounding)."""
    out: dict[str, np.ndarray] = {}
    for key, value in packed.items():
        if key.endswith("::q"):
            base = key[: -len("::q")]
            out[base] = value.astype(np.float32) * packed[f"{base}::scale"]
        elif not key.endswith("::scale"):
            out[key] = np.asarray(value, dtype=np.float32)
    return out
