"""Issue 3 benchmark: ingest throughput against the machine's CPU-bound limit, photo → results
latency, CLI cold start, and retrieval quality, all measured side by side in one run.

    .venv/bin/python bench/bench_ingest.py --dataset ../shared/datasets/clothing-dataset

Prints a table and writes JSON (--out). Needs the `export` extra for the torch-eager line.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from lookalike import Catalog, Settings, create, load_image
from lookalike.attributes import default_taggers
from lookalike.catalog.ingest import IngestReport
from lookalike.evaluation import retrieval_metrics
from lookalike.recommend import search_image

IGNORE = ("Not sure", "Skip", "Other")
BATCH_SIZES = (4, 8, 16, 32)  # the model alone is measured at each; the fastest sets the limit


def dataset_paths(root: Path) -> list[Path]:
    with (root / "images.csv").open() as f:
        rows = list(csv.DictReader(f))
    paths = [root / "images" / f"{r['image']}.jpg" for r in rows]
    return [p for p in paths if p.exists()]


def per_image(fn: object, items: Sequence[object]) -> float:
    """Seconds per item of fn over items, on this one thread."""
    start = time.perf_counter()
    for it in items:
        fn(it)  # type: ignore[operator]
    return (time.perf_counter() - start) / len(items)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dataset", type=Path, default=Path("../shared/datasets/clothing-dataset"))
    ap.add_argument("--limit", type=int, default=0, help="use only the first N images")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=3, help="limit + ingest measured N times")
    ap.add_argument("--model", default=Settings().model)
    ap.add_argument("--batch-size", type=int, default=Settings().batch_size,
                    help="the ingest's batch size (default: Settings().batch_size)")
    ap.add_argument("--out", type=Path, default=Path("artifacts/bench_ingest.json"))
    args = ap.parse_args()
    cores = os.cpu_count() or 1
    batch_size = args.batch_size
    paths = dataset_paths(args.dataset)
    if args.limit:
        paths = paths[: args.limit]
    res: dict[str, object] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.processor() or platform.machine()}, {cores} cores",
        "images": len(paths),
        "model": args.model,
    }
    enc1 = create(args.model, Settings(model=args.model, intra_op_threads=1))
    enc2 = create(args.model, Settings(model=args.model, intra_op_threads=cores))
    pre = enc1.preprocess
    draft = (pre.resize_size, pre.resize_size)
    # spread over the whole data set: its first 512 files are 16 % larger than the average
    sample = paths[:: max(1, len(paths) // 512)][:512]
    for p in sample:  # warm the page cache so no line below measures the disk
        p.read_bytes()

    batch = np.stack([pre(load_image(p, draft_size=draft)) for p in sample[:256]])

    def onnx_rate(enc: object, size: int) -> float:
        enc.encode_batch(batch[:size])  # type: ignore[attr-defined]
        start = time.perf_counter()
        for i in range(0, len(batch), size):
            enc.encode_batch(batch[i : i + size])  # type: ignore[attr-defined]
        return len(batch) / (time.perf_counter() - start)

    def components() -> tuple[float, dict[int, float]]:
        """1. decoding + preprocessing alone, one thread (s per image); 2. the ONNX model
        alone on 1 thread at each batch size (images/s)."""
        decode = per_image(lambda p: pre(load_image(p, draft_size=draft)), sample)
        return decode, {size: onnx_rate(enc1, size) for size in BATCH_SIZES}

    def around(ingest: Callable[[], float]) -> tuple[float, float, float, float,
                                                     dict[int, float]]:
        """The limit's parts measured just before and just after `ingest()` and averaged (the
        VM's speed drifts within seconds), the fastest batch size on that average (the
        strictest limit), the model on all cores at it, and the ingest's images/s."""
        d0, s0 = components()
        e2e = ingest()
        d1, s1 = components()
        by_size = {k: (s0[k] + s1[k]) / 2 for k in BATCH_SIZES}
        best = max(by_size, key=lambda k: by_size[k])
        return (d0 + d1) / 2, by_size[best], onnx_rate(enc2, best), e2e, by_size

    # 3. torch eager alone (same tensors)
    torch_rate = None
    try:
        import torch

        from lookalike.encoders.efficientnet import VARIANTS, torch_feature_model
        from lookalike.encoders.quantized import SUFFIX
        from lookalike.encoders.trained import trained_torch_model

        torch.set_num_threads(cores)
        # the fp32 torch network behind the model (an -int8 model is its quantised export)
        base = args.model.removesuffix(SUFFIX)
        tm = torch_feature_model(base) if base in VARIANTS else trained_torch_model(base)[0]
        with torch.no_grad():
            tm(torch.from_numpy(batch[:32]))
            start = time.perf_counter()
            for i in range(0, 128, 32):
                tm(torch.from_numpy(batch[i : i + 32]))
            torch_rate = 128 / (time.perf_counter() - start)
    except Exception as exc:  # torch is an optional extra
        print(f"torch eager skipped: {exc}", file=sys.stderr)

    # 4. a naive loop: decode a batch, then encode it (all cores), no overlap
    start = time.perf_counter()
    for i in range(0, len(sample), 32):
        chunk = np.stack([pre(load_image(p, draft_size=draft)) for p in sample[i : i + 32]])
        enc2.encode_batch(chunk)
    naive_rate = len(sample) / (time.perf_counter() - start)

    # 5. end to end: the real ingest (decode + encode + store) of the whole dataset
    work = Path(tempfile.mkdtemp(prefix="lookalike-bench-"))
    try:
        meta = work / "items.csv"
        with (args.dataset / "images.csv").open() as f, meta.open("w", newline="") as out:
            reader = csv.DictReader(f)
            columns = ["id", "image", "category", "kids", "sender_id"]
            writer = csv.DictWriter(out, fieldnames=columns)
            writer.writeheader()
            keep = {p.stem for p in paths}
            for r in reader:
                if r["image"] in keep or not args.limit:
                    writer.writerow({"id": r["image"], "image": r["image"] + ".jpg",
                                     "category": r["label"], "kids": r["kids"],
                                     "sender_id": r["sender_id"]})
        # with the default taggers (colour from pixels at ingest), as a user runs it
        tagged = Catalog.open(Settings(catalog_dir=work / "tagged", model=args.model),
                              taggers=default_taggers)
        e2e_tagged = tagged.ingest(args.dataset / "images", meta).images_per_second
        tagged.close()
        # decode + encode + store only, what the CPU-bound limit describes. The machine's speed
        # drifts (a shared VM: decode 1.1-1.6 ms, ONNX 190-250 images/s within minutes), so each
        # round measures the limit's parts right before and right after its ingest; the ratio
        # reported is the median of the rounds' ratios.
        rounds = []
        for rnd in range(args.rounds):
            settings = Settings(catalog_dir=work / f"catalog{rnd}", model=args.model,
                                auto_tag=False, batch_size=batch_size)
            cat = Catalog.open(settings, taggers=default_taggers)
            reports: list[IngestReport] = []

            def run_ingest(cat: Catalog = cat, reports: list[IngestReport] = reports) -> float:
                reports.append(cat.ingest(args.dataset / "images", meta))
                return reports[-1].images_per_second

            decode_s, onnx_1, onnx_n, e2e, by_size = around(run_ingest)
            report = reports[0]
            limit = cores / (1.0 / onnx_1 + decode_s)
            rounds.append((e2e / limit, e2e, limit, decode_s, onnx_1, onnx_n, by_size))
            sizes = ", ".join(f"{k}: {v:.1f}" for k, v in by_size.items())
            print(f"round {rnd + 1}: decode {decode_s * 1000:.2f} ms, ONNX 1 thread by batch "
                  f"size ({sizes}) img/s, {cores} threads {onnx_n:.1f} (= "
                  f"{onnx_n / (cores * onnx_1):.0%} of {cores} x 1 thread), limit {limit:.1f}, "
                  f"ingest (batches of {batch_size}) {e2e:.1f} img/s = {e2e / limit:.1%}",
                  file=sys.stderr)
            if rnd + 1 < args.rounds:
                cat.close()
        # the median round's numbers go in the table
        ratio, e2e, limit, decode_s, onnx_1, onnx_n, by_size = sorted(
            rounds, key=lambda r: r[0]
        )[len(rounds) // 2]
        # the same with the limit's model time taken at the ingest's own batch size
        same_batch = sorted(
            r[1] / (cores / (1.0 / r[6][batch_size] + r[3])) for r in rounds
        )[len(rounds) // 2] if batch_size in BATCH_SIZES else None
        model_core_s = 1.0 / onnx_1

        # 6. warm photo → results latency (decode + encode + search), 200 queries
        queries = paths[:: max(1, len(paths) // args.queries)][: args.queries]
        search_image(cat, queries[0], k=10)
        lat = []
        for q in queries:
            t = time.perf_counter()
            search_image(cat, q, k=10)
            lat.append(time.perf_counter() - t)
        one = batch[:1]
        enc_lat = []
        for _ in range(50):
            t = time.perf_counter()
            cat.encoder.encode_batch(one)
            enc_lat.append(time.perf_counter() - t)

        # 7. CLI cold start: a new process per query
        cold = []
        for q in queries[:3]:
            t = time.perf_counter()
            subprocess.run([sys.executable, "-m", "lookalike", "search", str(q), "--json",
                            "-c", str(settings.catalog_dir)], check=True, capture_output=True)
            cold.append(time.perf_counter() - t)

        # 8. retrieval quality: P@10 of the same label, the query's contributor excluded
        ids, vecs = cat.store.vectors()
        items = cat.store.get_many(ids.tolist())
        quality = retrieval_metrics(
            vecs, [it.category or "" for it in items],
            [str(it.extra.get("sender_id")) for it in items], ks=(1, 5, 10), ignore_labels=IGNORE,
        )
        cat.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    res.update({
        "decode_ms_per_image": round(decode_s * 1000, 2),
        "onnx_1_thread_img_s": round(onnx_1, 1),
        "onnx_1_thread_img_s_by_batch_size": {k: round(v, 1) for k, v in by_size.items()},
        "ingest_batch_size": batch_size,
        f"onnx_{cores}_threads_img_s": round(onnx_n, 1),
        # how well this machine's cores scale on the model alone (1.0 = perfectly)
        "onnx_parallel_efficiency": round(onnx_n / (cores * onnx_1), 3),
        "torch_eager_img_s": None if torch_rate is None else round(torch_rate, 1),
        "naive_sequential_img_s": round(naive_rate, 1),
        "cpu_bound_limit_img_s": round(limit, 1),
        "ingest_end_to_end_img_s": round(e2e, 1),
        "ingest_with_colour_tagger_img_s": round(e2e_tagged, 1),
        "ingest_added": report.added,
        "ingest_rejected": len(report.rejected),
        "ingest_seconds": round(report.seconds, 1),
        "ingest_vs_limit": round(ratio, 3),
        "ingest_vs_limit_rounds": [round(r[0], 3) for r in rounds],
        "ingest_vs_limit_at_ingest_batch_size": None if same_batch is None else round(
            same_batch, 3),
        "latency_p50_ms": round(float(np.percentile(lat, 50)) * 1000, 2),
        "latency_p99_ms": round(float(np.percentile(lat, 99)) * 1000, 2),
        "encode_batch1_p50_ms": round(float(np.percentile(enc_lat, 50)) * 1000, 2),
        "cli_cold_start_s": round(float(np.median(cold)), 2),
        "precision@10_other_contributors": round(quality["precision@10"], 4),
        "precision@1_other_contributors": round(quality["precision@1"], 4),
    })
    width = max(len(k) for k in res)
    for key, value in res.items():
        print(f"{key:<{width}}  {value}")
    print(f"\nend-to-end ingest is {ratio:.1%} of the CPU-bound limit (median of {len(rounds)} "
          f"rounds) "
          f"{cores} / ({model_core_s * 1000:.2f} ms model + {decode_s * 1000:.2f} ms decode); "
          "model time at its fastest batch size")
    if same_batch is not None:
        print(f"with the model timed at the ingest's batch size ({batch_size}): {same_batch:.1%}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
