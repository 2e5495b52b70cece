"""A compact embedding: a learned linear projection of a trained model's full-width vector.

The full-width `lookalike-fashion` vector has 2,624 dimensions (fine-tuned GAP 1,280 | ImageNet
GAP 1,280 | garment colour 64): about 10 KB of float32 per catalog item before any index. A
projection learned on the training images keeps what matters for retrieval in a few hundred
dimensions (PCA-whitening, Jégou & Chum 2012):

    f = the full-width embedding (L2-normalised), mean μ and covariance C over training photos
    C = U Λ Uᵀ (eigenvalues descending); keep the first `dim` components
    P = diag((λ_i + shrink · mean(λ_1..dim)) ^ -power/2) U_dimᵀ          (dim, d)
    compact(f) = normalise((f - μ) @ Pᵀ)

`power` 0 is plain (centred) PCA, 1 full whitening; `shrink` keeps small components from being
blown up. The projection is stored with the model's weights (int8, one scale per output row)
and applied inside its ONNX graph after the full-width embedding (`projected_module`), so
serving runs one model file. Fitted on the train contributors' photos only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from lookalike.encoders.base import l2_normalise
from lookalike.encoders.weights import pack_weights, unpack_weights

PREFIX = "project."  # keys of the projection in a compact model's weights file


@dataclass(frozen=True)
class Projection:
    mean: NDArray[np.float32]  # (d,)
    matrix: NDArray[np.float32]  # (dim, d): one row per output component

    @property
    def dim(self) -> int:
        return int(self.matrix.shape[0])

    def __call__(self, features: NDArray[np.float32]) -> NDArray[np.float32]:
        """(n, d) full-width features → (n, dim) projected, L2-normalised (as the graph does)."""
        centred = np.asarray(features, dtype=np.float32) - self.mean
        return l2_normalise(centred @ self.matrix.T)


def learn_projection(
    features: NDArray[np.floating[Any]], dim: int, *, power: float = 0.5, shrink: float = 0.0
) -> Projection:
    """PCA-whitening of `features` (n, d) to `dim` components (see the module docstring)."""
    if features.ndim != 2 or len(features) < 2:
        raise ValueError(f"learn_projection needs (n >= 2, d) features, got {features.shape}")
    n, d = features.shape
    if not 1 <= dim <= min(n, d):
        raise ValueError(f"dim must be in 1..{min(n, d)} for {n} rows of {d} dims, got {dim}")
    if not 0.0 <= power <= 1.0:
        raise ValueError(f"power must be in [0, 1], got {power}")
    if shrink < 0:
        raise ValueError(f"shrink must be >= 0, got {shrink}")
    x = np.asarray(features, dtype=np.float64)
    mean = x.mean(axis=0)
    centred = x - mean
    evals, evecs = np.linalg.eigh(centred.T @ centred / n)
    top = np.argsort(evals)[::-1][:dim]
    lam = np.clip(evals[top], 0.0, None)
    lam = lam + shrink * float(lam.mean()) + 1e-12
    vecs = evecs[:, top]
    vecs *= np.where(vecs[np.abs(vecs).argmax(axis=0), range(dim)] < 0, -1.0, 1.0)  # fixed sign
    matrix = (vecs / lam ** (power / 2)).T
    return Projection(mean.astype(np.float32), matrix.astype(np.float32))


def pack_projection(proj: Projection) -> dict[str, np.ndarray]:
    """For the weights file: the matrix as int8 + one scale per output row (1.3 MB for
    512 x 2,624)."""
    return pack_weights({PREFIX + "mean": proj.mean, PREFIX + "matrix": proj.matrix})


def unpack_projection(packed: dict[str, np.ndarray]) -> Projection | None:
    """The projection stored in a weights file, or None if it has none."""
    state = unpack_weights({k: v for k, v in packed.items() if k.startswith(PREFIX)})
    if not state:
        return None
    return Projection(state[PREFIX + "mean"], state[PREFIX + "matrix"])


def as_committed(proj: Projection) -> Projection:
    """`proj` after the int8 round trip of the weights file (what the ONNX graph will use)."""
    committed = unpack_projection(pack_projection(proj))
    assert committed is not None  # pack_projection always writes both arrays
    return committed


def projected_module(full: Any, proj: Projection) -> Any:
    """torch module for export: the full-width model `full`, then a MatMul with the projection
    and an L2 normalisation (needs torch)."""
    import torch

    class Projected(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.full = full
            self.register_buffer("p_mean", torch.as_tensor(proj.mean).float())
            self.register_buffer("p_matrix_t", torch.as_tensor(proj.matrix.T.copy()).float())

        def forward(self, x: Any) -> Any:
            mean: Any = self.p_mean
            matrix_t: Any = self.p_matrix_t
            out = (self.full(x) - mean) @ matrix_t
            return torch.nn.functional.normalize(out, dim=1)

    return Projected().eval()
