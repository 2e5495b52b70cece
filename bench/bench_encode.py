"""Encode cost of encoders side by side (issue 18: the compact default beside the full-width one).

    python bench/bench_encode.py --model lookalike-fashion-int8 --model lookalike-fashion-512-int8

One ONNX Runtime thread per model (as each batch-ingest worker runs), the same preprocessed
photos of the bundled sample, the models measured in alternating rounds so a shared machine's
drift hits them alike. Prints per model: batch-1 latency (p50 / p90 ms), batch-4 throughput
(images/s), vector size (float32 bytes), and each model's ratio to the first.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from datetime import UTC, datetime

import numpy as np

from lookalike import Settings, create, load_image
from lookalike.demo import sample_images


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", action="append", required=True, help="repeatable")
    ap.add_argument("--photos", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    encoders = {m: create(m, Settings(model=m, intra_op_threads=1)) for m in args.model}
    first = encoders[args.model[0]]
    paths = sorted(sample_images().glob("*.jpg"))[: args.photos]
    batch = np.stack([first.preprocess(load_image(p)) for p in paths])
    for enc in encoders.values():  # same pixels for every model
        assert enc.preprocess == first.preprocess, "models with other preprocessing"
        enc.encode_batch(batch[:4])  # warm up
    single: dict[str, list[float]] = {m: [] for m in encoders}
    rate: dict[str, list[float]] = {m: [] for m in encoders}
    for _ in range(args.rounds):
        for name, enc in encoders.items():
            for row in batch:
                t = time.perf_counter()
                enc.encode_batch(row[None])
                single[name].append(time.perf_counter() - t)
            t = time.perf_counter()
            for i in range(0, len(batch), 4):
                enc.encode_batch(batch[i : i + 4])
            rate[name].append(len(batch) / (time.perf_counter() - t))
    print(f"{datetime.now(UTC).isoformat(timespec='seconds')}  {platform.machine()}, "
          f"{os.cpu_count()} cores, 1 ONNX thread, {len(batch)} photos x {args.rounds} rounds")
    print(f"{'model':30s} {'dim':>5s} {'bytes':>6s} {'b1 p50 ms':>10s} {'b1 p90 ms':>10s} "
          f"{'b4 img/s':>9s} {'p50 ratio':>9s}")
    base = float(np.median(single[args.model[0]]))
    for name, enc in encoders.items():
        p50, p90 = (float(np.percentile(single[name], q)) for q in (50, 90))
        print(f"{name:30s} {enc.dim:5d} {enc.dim * 4:6d} {p50 * 1000:10.2f} {p90 * 1000:10.2f} "
              f"{float(np.median(rate[name])):9.1f} {p50 / base:9.3f}")


if __name__ == "__main__":
    main()
