"""Exact similarity scans: every query against every row of a matrix, in ONNX Runtime.

A photo search on a catalog of a few thousand items is one matrix-vector product over the whole
vector matrix (5,398 x 2,624 float32 = 57 MB for the clothing dataset with the default model):
memory-bound, and the largest part of a search after the encoder. ONNX Runtime's MatMul (MLAS)
does it in the caller's thread plus `threads - 1` pool threads that sleep, not spin, between
calls (`allow_spinning` off), so it never holds a core the next photo's encoder needs.

Measured side by side on a 2-core Sapphire Rapids VM (2026-12-03, 5,398 x 2,624, one query):
numpy's einsum loop 4.3 ms; numpy's OpenBLAS 0.99 ms on 2 threads but its threads busy-wait
after each call (the reason einsum was used before: photo searches from 2 threads were 117/s
through OpenBLAS vs 212/s through einsum at 1,280 dims); OpenBLAS limited to 1 thread 2.0 ms;
this MatMul 2.0 ms on 1 thread and 1.05 ms on 2. With 8 / 64 queries at once on 2 threads:
1.7 / 6.2 ms vs OpenBLAS 4.3 / 9.2 ms.

Fewer bytes beat faster reads: a search reads the matrix from memory once per photo, and in a
real loop of photo searches (decode, encode, search, again) it is no longer in the caches, so a
one-query scan costs 2.8-3 ms there, not 1.05. So large scans go in two exact stages
(`Scanner.top_k`): every row's score is first computed in int8 (a u8 x s8 `MatMulInteger`, a
quarter of the bytes: 0.4 ms alone), with a guaranteed error bound per row from Cauchy-Schwarz
|q.m - q'.m'| <= |q| |m - m'| + |q - q'| |m'| (q', m' the dequantised vectors); only the rows whose
upper bound reaches the k-th best lower bound can be in the top k, and those few (62 median,
229 at most for k = 11 on the clothing catalog) are scored again in float32. The result is the
exact top k, not an approximation: the bound holds for every row, whatever the data.

The graphs are single nodes, shipped as `data/models/scan*.onnx` (built by `scan_models`, which
needs the `onnx` package; a test checks the shipped files are what it builds).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from numpy.typing import NDArray

from lookalike.index.base import Matrix, top_k

MODELS = Path(__file__).resolve().parent.parent / "data" / "models"
SCAN_FILES = {"float32": "scan.onnx", "int8": "scan-int8.onnx"}
INT8_MIN_ROWS = 2048  # below this the float32 scan is as fast (the matrix fits in the caches)
INT8_MAX_QUERIES = 16  # many queries at once: the float32 product is compute-bound anyway
ZERO_POINT = 128  # int8 codes are stored as uint8 = code + 128 (ONNX Runtime's fast u8 x s8 kernel)
# float32 rounding of a dot product of unit vectors in <= ~4k dims stays far below this
SLACK = 2e-4
# a search rescoring only its best rows rescores more while the first stage's error (its
# mean plus this many standard deviations, measured on the rows rescored) leaves them in reach
WIDEN_SPREAD = 2.0


def scan_models() -> dict[str, bytes]:
    """The scan graphs (needs `onnx`): float32 scores[n, m] = matrix[n, d] @ queries_t[d, m];
    int8 dots[n, m] = (codes[n, d] - 128) @ queries_t[d, m] in int32."""
    from onnx import TensorProto, helper, numpy_helper

    def model(node: Any, inputs: list[Any], output: Any, inits: list[Any]) -> bytes:
        graph = helper.make_graph([node], "lookalike-scan", inputs, [output], inits)
        m = helper.make_model(
            graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="lookalike"
        )
        m.ir_version = 8  # readable by every ONNX Runtime the project allows (>= 1.18)
        data: bytes = m.SerializeToString()
        return data

    def io(name: str, dtype: int, shape: list[str]) -> Any:
        return helper.make_tensor_value_info(name, dtype, shape)

    f32, u8, s8, i32 = TensorProto.FLOAT, TensorProto.UINT8, TensorProto.INT8, TensorProto.INT32
    zero = numpy_helper.from_array(np.array(ZERO_POINT, dtype=np.uint8), "zero_point")
    return {
        "float32": model(
            helper.make_node("MatMul", ["matrix", "queries_t"], ["scores"]),
            [io("matrix", f32, ["n", "d"]), io("queries_t", f32, ["d", "m"])],
            io("scores", f32, ["n", "m"]), [],
        ),
        "int8": model(
            helper.make_node("MatMulInteger", ["codes", "queries_t", "zero_point"], ["dots"]),
            [io("codes", u8, ["n", "d"]), io("queries_t", s8, ["d", "m"])],
            io("dots", i32, ["n", "m"]), [zero],
        ),
    }


@dataclass(frozen=True)
class Int8Rows:
    """A float32 matrix's rows in int8 (one scale per row) with what the exact bound needs:
    each row's quantisation error norm |m - m'| and dequantised norm |m'|."""

    codes: NDArray[np.uint8]  # (n, d): round(m / scale) + 128
    scale: NDArray[np.float32]  # (n,)
    error: NDArray[np.float32]  # (n,)
    norm: NDArray[np.float32]  # (n,)

    @classmethod
    def of(cls, matrix: Matrix, block: int = 512) -> Int8Rows:
        """Quantise `matrix` row by row, `block` rows at a time so the temporaries stay in the
        caches (opening the clothing catalog: 42-59 ms for 5,398 x 2,624 vs 158 ms in one go)."""
        matrix = np.asarray(matrix, dtype=np.float32)
        n = len(matrix)
        codes = np.empty(matrix.shape, dtype=np.uint8)
        scale, error, norm = (np.empty(n, dtype=np.float32) for _ in range(3))
        for a in range(0, n, block):
            x = matrix[a : a + block]
            signed, scale[a : a + block], approx = _quantise(x)
            codes[a : a + block] = signed.view(np.uint8) ^ np.uint8(ZERO_POINT)
            squares = np.square(approx)
            norm[a : a + block] = np.sqrt(squares.sum(axis=1))  # pairwise sums: accurate
            approx -= x
            np.square(approx, out=squares)
            error[a : a + block] = np.sqrt(squares.sum(axis=1))
        return cls(codes, scale, error, norm)

    def __len__(self) -> int:
        return len(self.scale)

    def take(self, positions: NDArray[np.intp] | NDArray[np.bool_]) -> Int8Rows:
        return Int8Rows(self.codes[positions], self.scale[positions], self.error[positions],
                        self.norm[positions])

    @staticmethod
    def concat(parts: list[Int8Rows]) -> Int8Rows:
        return Int8Rows(*(np.concatenate([getattr(p, f) for p in parts])
                          for f in ("codes", "scale", "error", "norm")))


def _quantise(x: Matrix) -> tuple[NDArray[np.int8], NDArray[np.float32], Matrix]:
    """Symmetric int8 per row: (codes, scales, dequantised rows)."""
    peak = np.maximum(x.max(axis=1), -x.min(axis=1)) if x.size else np.zeros(len(x))
    scale = np.where(peak > 0, peak / 127.0, 1.0).astype(np.float32)
    approx: Matrix = x * (1.0 / scale)[:, None]
    np.rint(approx, out=approx)  # |values| <= 127 by the choice of scale
    codes = approx.astype(np.int8)
    approx *= scale[:, None]
    return codes, scale, approx


class Scanner:
    """`scanner(queries, matrix)` → (m, n) inner products, float32; `scanner.top_k(...)` → the
    exact best k per query, through int8 first when that is faster. `threads` 0 = all cores.
    Safe to call from several threads at once."""

    def __init__(self, threads: int = 1) -> None:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or (os.cpu_count() or 1)
        opts.inter_op_num_threads = 1
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.threads = opts.intra_op_num_threads
        self._float32, self._int8 = (
            ort.InferenceSession(str(MODELS / SCAN_FILES[kind]), opts,
                                 providers=["CPUExecutionProvider"])
            for kind in ("float32", "int8")
        )

    def __call__(self, queries: Matrix, matrix: Matrix) -> Matrix:
        queries = np.asarray(queries, dtype=np.float32)
        matrix = np.ascontiguousarray(matrix, dtype=np.float32)
        m, n = len(queries), len(matrix)
        if m == 0 or n == 0:
            return np.zeros((m, n), dtype=np.float32)
        # one query: its transpose is a free reshape; several: a small copy
        queries_t = np.ascontiguousarray(queries.T)
        scores: Matrix = self._float32.run(
            None, {"matrix": matrix, "queries_t": queries_t}
        )[0].T
        return scores

    def int8_dots(self, codes: NDArray[np.uint8], queries: QueryCodes) -> NDArray[np.int32]:
        """(n, m) integer dot products of `Int8Rows` codes with quantised queries."""
        if len(codes) == 0:
            return np.zeros((0, len(queries.codes)), dtype=np.int32)
        dots: NDArray[np.int32] = self._int8.run(
            None, {"codes": codes, "queries_t": np.ascontiguousarray(queries.codes.T)}
        )[0]
        return dots

    def top_k(
        self,
        queries: Matrix,
        matrix: Matrix,
        rows: Int8Rows | None,
        k: int,
        positions: NDArray[np.intp] | None = None,
    ) -> tuple[Matrix, NDArray[np.intp]]:
        """The best k rows of `matrix` (or of its rows at `positions`, a filter's subset) per
        query, as `base.top_k(self(queries, matrix[positions]), k)` gives them: indices into
        the subset. `rows` (the matrix's `Int8Rows`) lets a large scan run in two exact stages;
        a subset's float32 rows are then never gathered, only its int8 codes and candidates.
        """
        queries = np.asarray(queries, dtype=np.float32)
        m, n = len(queries), len(matrix) if positions is None else len(positions)
        if rows is None or n < INT8_MIN_ROWS or m > INT8_MAX_QUERIES or k >= n or k < 1:
            return top_k(self(queries, matrix if positions is None else matrix[positions]), k)
        if positions is not None:
            rows = rows.take(positions)
        q = QueryCodes.of(queries)
        dots = self.int8_dots(rows.codes, q)
        out_s = np.empty((m, k), dtype=np.float32)
        out_i = np.empty((m, k), dtype=np.intp)
        for j in range(m):
            candidates = q.candidates(j, dots[:, j], rows.scale, rows.error, rows.norm, k)
            at = candidates if positions is None else positions[candidates]
            # a few hundred rows at most: numpy's own loop, no thread hand-off
            rescored = np.einsum("d,nd->n", queries[j], matrix[at])[None]
            scores, idx = top_k(rescored, k)
            out_s[j], out_i[j] = scores[0], candidates[idx[0]]
        return out_s, out_i


@dataclass(frozen=True)
class QueryCodes:
    """Queries quantised like `Int8Rows`, with what the exact bound needs."""

    codes: NDArray[np.int8]  # (m, d)
    scale: NDArray[np.float32]  # (m,)
    norm: NDArray[np.float32]  # (m,) |q|
    error: NDArray[np.float32]  # (m,) |q - q'|

    @classmethod
    def of(cls, queries: Matrix) -> QueryCodes:
        queries = np.asarray(queries, dtype=np.float32)
        codes, scale, approx = _quantise(queries)
        return cls(codes, scale, np.linalg.norm(queries, axis=1),
                   np.linalg.norm(queries - approx, axis=1))

    @classmethod
    def projected(cls, queries: Matrix, low: Matrix) -> QueryCodes:
        """Codes of `low` (the queries projected, q' = P q) carrying |q| at full width as their
        norm: what the bound needs against rows coded by `segments.projected_codes`."""
        codes = cls.of(low)
        norm = np.linalg.norm(np.asarray(queries, dtype=np.float32), axis=1)
        return cls(codes.codes, codes.scale, norm.astype(np.float32), codes.error)

    def candidates(
        self,
        j: int,
        dots: NDArray[np.int32],
        scale: NDArray[np.float32],
        error: NDArray[np.float32],
        norm: NDArray[np.float32],
        k: int,
        valid: NDArray[np.bool_] | None = None,
    ) -> NDArray[np.intp]:
        """Rows (of those `dots` were computed for) that can be among query j's exact top k:
        those whose score's upper bound reaches the k-th best lower bound. Rows outside `valid`
        never are. Every row when the bound cannot be trusted (non-finite values)."""
        approx = self.approx(j, dots, scale)
        bound = self.norm[j] * error + self.error[j] * norm + SLACK * self.norm[j]
        lower = approx - bound
        upper = approx + bound
        if valid is not None:
            lower[~valid] = -np.inf
            upper[~valid] = -np.inf
        n = len(lower)
        kk = min(k, n)
        if kk == 0:
            return np.zeros(0, dtype=np.intp)
        kth_lower = np.partition(lower, n - kk)[n - kk]
        # every row of the true top k has score >= the k-th best lower bound
        candidates = np.flatnonzero(upper >= kth_lower)
        if len(candidates) < kk or not np.isfinite(kth_lower):
            # non-finite values, or fewer valid rows than k: score every valid row
            candidates = np.arange(n) if valid is None else np.flatnonzero(valid)
        return candidates

    def approx(self, j: int, dots: NDArray[np.int32], scale: NDArray[np.float32]) -> Matrix:
        """Query j's approximate scores from its int8 `dots` with rows of scales `scale`."""
        out: Matrix = dots.astype(np.float32) * (scale * self.scale[j])
        return out


def rescore_depth(approx: Matrix, exact: Matrix, k: int, cap: int) -> int:
    """How many rows, best first by first-stage score, a search that rescores only its best
    rows should rescore: `approx` holds the first-stage scores of the rows it may rescore,
    best first, `exact` the full-width scores of the first `len(exact)` of them (rescored).

    The first stage's error on those rows (`exact - approx`) stands for its error on the
    others: a further row may still rank when its first-stage score reaches the k-th best
    exact score found, less that error's mean and `WIDEN_SPREAD` standard deviations; such
    rows are rescored too, up to `cap` rows in all. The error depends on the catalog (on
    synthetic 2,624-d vectors coded at 512-d its spread was 0.0044 at 1M items and 0.016 at
    100k), so a fixed number of rows held the exact top 10 at one size and not the other."""
    r = len(exact)
    if r < k or r >= min(cap, len(approx)):
        return r
    error = exact - approx[:r]
    kth = float(np.partition(exact, r - k)[r - k])
    threshold = kth - float(error.mean()) - WIDEN_SPREAD * float(error.std())
    more = int(np.searchsorted(-approx[r:cap], -threshold, side="right"))
    return r + more
