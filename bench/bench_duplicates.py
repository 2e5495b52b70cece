"""Issue 21: how well reposts are caught, and what the check costs per ingested photo.

Generated reposts (resized 50-90 %, JPEG quality 30-90, cropped 2-8 %, mirrored, and all of
those combined) of N clothing photos against every distinct pair of a pool of M photos of the
clothing-dataset (the N among them; many pairs are one contributor's garments on the same
backdrop). Photos are decoded as ingest decodes them; the embedding is the real default model.

    .venv/bin/python bench/bench_duplicates.py --dataset ../shared/datasets/clothing-dataset

Prints, for the hash alone, the embedding alone and both (the settings' rule): recall per kind
of repost, false pairs among the distinct ones (same contributor / others), the pool photos an
ingest would take for a repost of an earlier one, and the precision of what such an ingest
reports; then the cosines for result collapsing (`near_duplicate_cos`), and the cost of the
check per photo (hash, candidate lookup and cosine check at this size) beside the model's
encode time; the default rule through the finder itself, exact scan against lists (both with
the vectors' sketch screen); how many hash candidates' vectors the sketch screen leaves to
read, of the distinct pairs and of the reposts (and any match it would wrongly skip); and the
stored-candidate lookup at --scale held hashes (clustered: the whole dataset's real hashes
with 0-8 random bits flipped, held in steps of 10,000 as ingest commits), exact scan against
the default finder's lists: CPU per photo, hold CPU, and how many planted originals (reposts
at the hash distances of the generated reposts the rule catches) each finds. Writes JSON
(--out).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import platform
import random
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from lookalike import Settings, create, load_image
from lookalike.catalog import CatalogStore, ItemIn, NewItem
from lookalike.catalog.duplicates import EXACT_UP_TO, DuplicateFinder, perceptual_hashes
from lookalike.catalog.sketch import max_distance, sketch_distances, vector_sketches

KINDS = ("resize", "jpeg", "crop", "mirror", "combined")


@dataclass
class Photo:
    name: str
    contributor: str
    hashes: tuple[int, int]
    vector: NDArray[np.float32]


def repost(img: Image.Image, kind: str, rng: random.Random) -> bytes:
    """A generated repost: `kind` of KINDS, parameters drawn from `rng`."""
    w, h = img.size
    combined = kind == "combined"
    if kind == "crop" or combined:
        cut_w, cut_h = rng.uniform(0.02, 0.08), rng.uniform(0.02, 0.08)
        left, top = rng.uniform(0, cut_w), rng.uniform(0, cut_h)
        img = img.crop((round(left * w), round(top * h),
                        round(w - (cut_w - left) * w), round(h - (cut_h - top) * h)))
    if kind == "mirror" or (combined and rng.random() < 0.5):
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if kind == "resize" or combined:
        scale = rng.uniform(0.5, 0.9)
        img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))),
                         Image.Resampling.BICUBIC)
    quality = rng.randint(30, 90) if kind == "jpeg" or combined else 92
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def dataset(root: Path) -> list[tuple[Path, str]]:
    with (root / "images.csv").open() as f:
        rows = list(csv.DictReader(f))
    out = [(root / "images" / f"{r['image']}.jpg", r["sender_id"]) for r in rows]
    return [(p, c) for p, c in out if p.exists()]


def min_distance(stored: NDArray[np.uint64], plain: NDArray[np.uint64],
                 mirrored: NDArray[np.uint64]) -> NDArray[np.int64]:
    """Bits between stored hashes and the nearer of a new photo's two hashes (broadcast)."""
    return np.minimum(np.bitwise_count(stored ^ plain),
                      np.bitwise_count(stored ^ mirrored)).astype(np.int64)


def per_call(fn: Callable[[], object], repeat: int) -> float:
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - start) / repeat


def flip_masks(bits: NDArray[np.int64], rng: np.random.Generator) -> NDArray[np.uint64]:
    """One 64-bit mask per entry with that many distinct bits set, drawn at random."""
    chosen = rng.random((len(bits), 64)).argsort(axis=1) < bits[:, None]
    return (chosen.astype(np.uint64) << np.arange(64, dtype=np.uint64)).sum(
        axis=1, dtype=np.uint64)


def lookup_at_scale(real: NDArray[np.uint64], repost_bits: NDArray[np.int64],
                    sizes: list[int], settings: Settings, queries: int = 1024,
                    seed: int = 19) -> list[dict[str, object]]:
    """The stored-candidate lookup of a large catalog, exact scan (old) against the default
    finder (grouped in lists above `EXACT_UP_TO`): held hashes made by flipping 0-8 random
    bits of the real photos' hashes (`real`: plain, mirrored), held in steps of 10,000 as
    ingest commits; at each size, `queries` planted reposts of held hashes (flipped by a
    distance drawn from the generated reposts' `repost_bits`, the mirrored hash the base
    photo's flipped alike). Per size: CPU per photo of each lookup (batches of 32, the least of
    three rounds; the lists are made at 60,000 and again at 240,000 and 960,000, so at 950,000
    they are the longest they get), whether each finds the planted original among its
    candidates, and how many of the exact scan's candidates the lists find."""
    rng = np.random.default_rng(seed)
    top = max(sizes)
    base = rng.integers(0, len(real), top)
    held = real[base, 0] ^ flip_masks(rng.integers(0, 9, top), rng)
    rowids = np.arange(1, top + 1, dtype=np.int64)

    def finder(exact_up_to: int) -> DuplicateFinder:
        return DuplicateFinder(settings.duplicate_hash_bits, settings.duplicate_cos,
                               settings.duplicate_cos_per_bit, exact_up_to=exact_up_to)

    old, new = finder(top + 1), finder(EXACT_UP_TO)
    hold_cpu = {"old": 0.0, "new": 0.0}
    longest_hold = 0.0  # the lists' longest step (a regrouping), CPU s
    out: list[dict[str, object]] = []
    size = 0
    for target in sorted(sizes):
        while size < target:
            step = slice(size, min(size + 10_000, target))
            for name, f in (("old", old), ("new", new)):
                cpu = time.process_time()
                f.hold(rowids[step], held[step])
                hold_cpu[name] += time.process_time() - cpu
                if name == "new":
                    longest_hold = max(longest_hold, time.process_time() - cpu)
            size = step.stop
        planted = rng.choice(size, queries, replace=False)
        bits = rng.choice(repost_bits, queries)
        masks = flip_masks(bits, rng)
        pairs = [(int(p), int(m)) for p, m in zip(held[planted] ^ masks,
                                                  real[base[planted], 1] ^ masks, strict=True)]
        found: dict[str, list[tuple[NDArray[np.int64], NDArray[np.int64]]]] = {}
        cpu_per_photo: dict[str, float] = {}
        for _ in range(3):  # the least of three rounds, each lookup in turn (a busy machine)
            for name, f in (("old", old), ("new", new)):
                cpu = time.process_time()
                found[name] = [c for i in range(0, queries, 32)
                               for c in f.stored_candidates(pairs[i:i + 32])]
                cpu_per_photo[name] = min(cpu_per_photo.get(name, np.inf),
                                          (time.process_time() - cpu) / queries)
        hit = {name: np.array([rowids[p] in keys for p, (keys, _) in
                               zip(planted, found[name], strict=True)])
               for name in found}
        kept = [len(set(n.tolist()) & set(o.tolist())) / len(o)
                for (o, _), (n, _) in zip(found["old"], found["new"], strict=True) if len(o)]
        near = min_distance(held[:size], np.array([p for p, _ in pairs[:64]], np.uint64)[:, None],
                            np.array([m for _, m in pairs[:64]], np.uint64)[:, None])
        buckets = {"0-4": bits <= 4, "5-8": (bits > 4) & (bits <= 8),
                   "9-12": (bits > 8) & (bits <= 12), "13-16": bits > 12}
        out.append({
            "held": size,
            "lists": new._lists.lists.nlist if new._lists is not None else 0,
            "candidates_within_bits_per_photo": round(float(
                (near <= settings.duplicate_hash_bits).sum(axis=1).mean()), 1),
            "old_cpu_ms_per_photo": round(1e3 * cpu_per_photo["old"], 4),
            "new_cpu_ms_per_photo": round(1e3 * cpu_per_photo["new"], 4),
            "old_recall": round(float(hit["old"].mean()), 4),
            "new_recall": round(float(hit["new"].mean()), 4),
            "new_recall_of_old_found": round(float(hit["new"][hit["old"]].mean()), 4),
            "new_recall_of_old_found_by_bits": {
                k: round(float(hit["new"][b & hit["old"]].mean()), 4) if (b & hit["old"]).any()
                else None for k, b in buckets.items()},
            "old_candidates_kept": round(float(np.mean(kept)), 4),
            "hold_cpu_s_so_far": {k: round(v, 2) for k, v in hold_cpu.items()},
            "lists_longest_hold_cpu_s_so_far": round(longest_hold, 2),
        })
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dataset", type=Path, default=Path("../shared/datasets/clothing-dataset"))
    ap.add_argument("--photos", type=int, default=300, help="N photos that get reposts")
    ap.add_argument("--pool", type=int, default=1500, help="M distinct photos (N among them)")
    ap.add_argument("--seed", type=int, default=21)
    ap.add_argument("--model", default=Settings().model)
    ap.add_argument("--out", type=Path, default=Path("artifacts/bench_duplicates.json"))
    ap.add_argument("--scale", type=lambda v: [int(x) for x in v.split(",") if x],
                    default=[100_000, 300_000, 950_000, 1_000_000],
                    help="held hashes at which the lookup is timed, exact vs lists ('' skips)")
    args = ap.parse_args()
    settings = Settings(duplicates="reject")
    started = time.perf_counter()

    rng = random.Random(args.seed)
    photos = dataset(args.dataset)
    pool_paths = rng.sample(photos, min(args.pool, len(photos)))
    sources = pool_paths[: args.photos]
    encoder = create(args.model)
    draft = encoder.preprocess.resize_size

    def decode(source: Path | bytes) -> Image.Image:
        return load_image(source, draft_size=(draft, draft))

    def describe(images: list[Image.Image]) -> tuple[list[tuple[int, int]], NDArray[np.float32]]:
        hashes = [perceptual_hashes(img) for img in images]
        vectors = np.concatenate([encoder.encode_images(images[i:i + 16])
                                  for i in range(0, len(images), 16)])
        return hashes, vectors

    pool: list[Photo] = []
    decoded: dict[int, Image.Image] = {}
    for start in range(0, len(pool_paths), 64):
        chunk = pool_paths[start:start + 64]
        images = [decode(p) for p, _ in chunk]
        hashes, vectors = describe(images)
        for offset, ((path, who), h, v, img) in enumerate(
                zip(chunk, hashes, vectors, images, strict=True)):
            pool.append(Photo(path.stem, who, h, v))
            if start + offset < len(sources):
                decoded[start + offset] = img
    # reposts are made from the full-size file, then decoded as ingest would
    reposts: list[tuple[int, str, Photo]] = []
    for i, (path, who) in enumerate(sources):
        with Image.open(path) as opened:
            full = opened.convert("RGB")
        imgs = [decode(repost(full, kind, rng)) for kind in KINDS]
        hashes, vectors = describe(imgs)
        for kind, h, v in zip(KINDS, hashes, vectors, strict=True):
            reposts.append((i, kind, Photo(f"{path.stem}~{kind}", who, h, v)))
    prepared = time.perf_counter() - started

    # -- the pairs ---------------------------------------------------------------------------
    m = len(pool)
    plain = np.array([p.hashes[0] for p in pool], dtype=np.uint64)
    mirror = np.array([p.hashes[1] for p in pool], dtype=np.uint64)
    matrix = np.stack([p.vector for p in pool])
    contributor = np.array([p.contributor for p in pool])
    # a later photo j against an earlier i, as an ingest in pool order compares them
    bits_all = min_distance(plain[:, None], plain[None, :], mirror[None, :])
    cos_all = matrix @ matrix.T
    upper = np.triu_indices(m, 1)
    neg_bits, neg_cos = bits_all[upper], cos_all[upper]
    neg_same = (contributor[:, None] == contributor[None, :])[upper]
    pos_src = np.array([i for i, _, _ in reposts])
    pos_kind = np.array([k for _, k, _ in reposts])
    pos_bits = min_distance(plain[pos_src],
                            np.array([r.hashes[0] for _, _, r in reposts], dtype=np.uint64),
                            np.array([r.hashes[1] for _, _, r in reposts], dtype=np.uint64))
    pos_cos = np.einsum("ij,ij->i", matrix[pos_src], np.stack([r.vector for _, _, r in reposts]))

    finder = DuplicateFinder(settings.duplicate_hash_bits, settings.duplicate_cos,
                             settings.duplicate_cos_per_bit)

    def rule(bits: NDArray[np.int64], cos: NDArray[np.float32]) -> NDArray[np.bool_]:
        return (bits <= finder.max_bits) & (cos >= finder.min_cos + finder.cos_per_bit * bits)

    rules: list[tuple[str, Callable[[NDArray[np.int64], NDArray[np.float32]],
                                    NDArray[np.bool_]]]] = []
    for t in (4, 8, 12, 16):
        rules.append((f"hash alone, <= {t} bits", lambda b, c, t=t: b <= t))
    for c0 in (0.90, 0.93, 0.95, 0.97):
        rules.append((f"embedding alone, cos >= {c0:.2f}", lambda b, c, c0=c0: c >= c0))
    rules.append(("both, <= 16 bits and cos >= 0.90", lambda b, c: (b <= 16) & (c >= 0.90)))
    rules.append(("both, <= 16 bits and cos >= 0.95", lambda b, c: (b <= 16) & (c >= 0.95)))
    default = (f"both (default): <= {finder.max_bits} bits, cos >= {finder.min_cos:g} + "
               f"{finder.cos_per_bit:g}/bit")
    rules.append((default, rule))

    results = []
    rows_i, rows_j = upper
    for name, fn in rules:
        hit = fn(pos_bits, pos_cos)
        false = fn(neg_bits, neg_cos)
        flagged = len(np.unique(rows_j[false]))  # later photos taken for a repost of an earlier
        tp = int(hit.sum())
        results.append({
            "rule": name,
            "recall": round(float(hit.mean()), 3),
            "recall_by_kind": {k: round(float(hit[pos_kind == k].mean()), 3) for k in KINDS},
            "false_pairs": int(false.sum()),
            "false_pairs_same_contributor": int((false & neg_same).sum()),
            "pool_photos_flagged": flagged,
            "precision": round(tp / (tp + flagged), 3) if tp + flagged else 1.0,
        })

    # -- calibration of the rule: the cosine at 0 bits and the rise per bit ------------------
    sweep = []
    for base in (0.84, 0.86, 0.88, 0.90, 0.92):
        for slope in (0.0, 0.004, 0.006, 0.008, 0.010):
            def sloped(b: NDArray[np.int64], c: NDArray[np.float32],
                       base: float = base, slope: float = slope) -> NDArray[np.bool_]:
                return (b <= finder.max_bits) & (c >= base + slope * b)
            hit, false = sloped(pos_bits, pos_cos), sloped(neg_bits, neg_cos)
            flagged = len(np.unique(rows_j[false]))
            tp = int(hit.sum())
            sweep.append({"cos": base, "per_bit": slope, "recall": round(float(hit.mean()), 3),
                          "false_pairs": int(false.sum()), "pool_photos_flagged": flagged,
                          "precision": round(tp / (tp + flagged), 3) if tp + flagged else 1.0})

    # -- result collapsing: cosine alone ------------------------------------------------------
    collapse = []
    for c0 in (0.93, 0.95, 0.96, 0.97, 0.98):
        distinct = neg_cos >= c0
        collapse.append({
            "cos": c0,
            "repost_recall": round(float((pos_cos >= c0).mean()), 3),
            "distinct_pairs": int(distinct.sum()),
            "same_contributor": int((distinct & neg_same).sum()),
            "per_million_pairs": round(1e6 * float(distinct.mean()), 2),
        })

    # -- cost of the check per photo ----------------------------------------------------------
    sample_imgs = list(decoded.values())[:100]
    hash_s = per_call(lambda: [perceptual_hashes(img) for img in sample_imgs], 3) / len(
        sample_imgs)
    batch = np.stack([encoder.preprocess(img) for img in sample_imgs[:16]])
    encoder.encode_batch(batch[:4])
    encode_s = per_call(lambda: [encoder.encode_batch(batch[i:i + 4]) for i in range(0, 16, 4)],
                        3) / 16
    with tempfile.TemporaryDirectory() as tmp:
        store = CatalogStore(Path(tmp) / "catalog.sqlite")
        store.bind_model(encoder.name, encoder.dim)
        store.add([NewItem(p.name, ItemIn(image=f"{p.name}.jpg"), f"/pool/{p.name}.jpg",
                           f"h{i}", phash=p.hashes[0]) for i, p in enumerate(pool)], matrix)
        finder.sync(store)
        queries = [r for _, _, r in reposts[:200]] + pool[-200:]
        find_s = per_call(lambda: [finder.find(q.hashes, q.vector, store) for q in queries],
                          3) / len(queries)
        # the same reposts through the finder itself: exact scan, and grouped in lists as
        # above EXACT_UP_TO (here 64 lists of ~23 hashes)
        grouped = DuplicateFinder(settings.duplicate_hash_bits, settings.duplicate_cos,
                                  settings.duplicate_cos_per_bit, exact_up_to=0)
        grouped.sync(store)
        through: dict[str, NDArray[np.bool_]] = {}
        for name, f in (("exact scan", finder), ("lists", grouped)):
            named = [f.find(r.hashes, r.vector, store) for _, _, r in reposts]
            through[name] = np.array([match is not None and match.original_id == pool[i].name
                                      for (i, _, _), match in zip(reposts, named, strict=True)])
        store.close()
    caught = rule(pos_bits, pos_cos)
    # -- the sketch screen: which hash candidates' vectors an ingest reads ------------------
    # every distinct pair (a later photo against an earlier) and every generated repost
    # against its original, within the hash distance and able to reach its cosine
    pool_sketch = vector_sketches(matrix)
    repost_sketch = vector_sketches(np.stack([r.vector for _, _, r in reposts]))

    def screen(bits: NDArray[np.int64], sk_a: NDArray[np.uint8], sk_b: NDArray[np.uint8],
               cos: NDArray[np.float32]) -> dict[str, int]:
        needed = finder.min_cos + finder.cos_per_bit * bits
        candidate = (bits <= finder.max_bits) & (needed <= 1.0 + 1e-3)
        read = candidate & (sketch_distances(sk_a, sk_b) <= max_distance(needed / (1 + 1e-3)))
        match = candidate & (cos >= needed)
        return {"candidates": int(candidate.sum()), "read": int(read.sum()),
                "matches": int(match.sum()), "matches_screened_out": int((match & ~read).sum())}

    sketch_screen = {
        "distinct_pairs": screen(neg_bits, pool_sketch[rows_i], pool_sketch[rows_j], neg_cos),
        "reposts": screen(pos_bits, pool_sketch[pos_src], repost_sketch, pos_cos),
    }
    scale: list[dict[str, object]] = []
    if args.scale:
        real = np.array([perceptual_hashes(decode(path)) for path, _ in photos], dtype=np.uint64)
        scale = lookup_at_scale(real, pos_bits[caught], args.scale, settings)
    cost = {
        "hash_ms": round(1e3 * hash_s, 3),
        f"find_ms_at_{m}_items": round(1e3 * find_s, 3),
        "model_encode_ms_batch4": round(1e3 * encode_s, 3),
        "check_share_of_encode": round((hash_s + find_s) / encode_s, 3),
    }

    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {__import__('os').cpu_count()} cores (shared)",
        "model": encoder.name,
        "photos_with_reposts": len(sources),
        "reposts": len(reposts),
        "pool": m,
        "distinct_pairs": len(neg_cos),
        "same_contributor_pairs": int(neg_same.sum()),
        "rules": results,
        "sweep": sweep,
        "collapse": collapse,
        "cost": cost,
        "finder": {name: {"recall": round(float(hit.mean()), 3),
                          "recall_by_kind": {k: round(float(hit[pos_kind == k].mean()), 3)
                                             for k in KINDS}}
                   for name, hit in through.items()},
        "sketch_screen": sketch_screen,
        "caught_repost_bits": {str(b): int((pos_bits[caught] == b).sum())
                               for b in range(finder.max_bits + 1)},
        "lookup_at_scale": scale,
        "seconds": {"prepare": round(prepared, 1),
                    "total": round(time.perf_counter() - started, 1)},
    }
    print(f"{len(reposts)} generated reposts of {len(sources)} photos; {m} distinct photos, "
          f"{len(neg_cos):,} distinct pairs ({int(neg_same.sum()):,} of one contributor); "
          f"model {encoder.name}")
    head = f"{'rule':<52} {'recall':>6} " + " ".join(f"{k[:6]:>6}" for k in KINDS)
    print(f"\n{head} {'false pairs (same contr.)':>26} {'flagged':>7} {'precision':>9}")
    for r in results:
        kinds = " ".join(f"{r['recall_by_kind'][k]:>6.3f}" for k in KINDS)
        same = f"{r['false_pairs']} ({r['false_pairs_same_contributor']})"
        print(f"{r['rule']:<52} {r['recall']:>6.3f} {kinds} {same:>26} "
              f"{r['pool_photos_flagged']:>7} {r['precision']:>9.3f}")
    print(f"\nthe rule's two numbers (<= {finder.max_bits} bits; recall / photos flagged):")
    slopes = sorted({r["per_bit"] for r in sweep})
    print(f"{'cos at 0 bits':>13} " + " ".join(f"{'+' + format(s, 'g') + '/bit':>15}"
                                                 for s in slopes))
    for base in sorted({r["cos"] for r in sweep}):
        cells = [r for r in sweep if r["cos"] == base]
        print(f"{base:>13.2f} " + " ".join(
            f"{r['recall']:>8.3f} / {r['pool_photos_flagged']:<4}" for r in cells))
    print("\nresult collapsing by cosine alone (near_duplicate_cos):")
    print(f"{'cos':>5} {'repost recall':>13} {'distinct pairs above':>21} {'same contr.':>11} "
          f"{'per 1M pairs':>12}")
    for c in collapse:
        print(f"{c['cos']:>5.2f} {c['repost_recall']:>13.3f} {c['distinct_pairs']:>21} "
              f"{c['same_contributor']:>11} {c['per_million_pairs']:>12.2f}")
    print("\ncost per photo (ms): " + ", ".join(f"{k} {v}" for k, v in cost.items()))
    print("\nthe default rule through the finder (original named), exact scan vs lists:")
    for name, r in report["finder"].items():  # type: ignore[attr-defined]
        kinds = " ".join(f"{k} {r['recall_by_kind'][k]:.3f}" for k in KINDS)
        print(f"  {name:<10} recall {r['recall']:.3f}  ({kinds})")
    print(f"hash distance of the reposts the default rule catches: {report['caught_repost_bits']}")
    print("\nthe sketch screen (vectors read of the hash candidates that could reach their "
          "cosine; matches: pairs the rule takes):")
    for name, r in sketch_screen.items():
        print(f"  {name:<15} {r['read']:>6} of {r['candidates']:>6} read "
              f"({r['read'] / max(1, r['candidates']):.3f}); matches {r['matches']}, "
              f"screened out {r['matches_screened_out']}")
    if scale:
        print("\nstored-candidate lookup at scale (clustered hashes: real ones with 0-8 bits "
              "flipped; planted reposts at the caught reposts' distances), exact scan vs lists:")
        print(f"{'held':>9} {'lists':>5} {'within bits':>11} {'CPU ms/photo':>17} "
              f"{'finds original':>15} {'of exact-found':>14} {'by bits 0-4/5-8/9-12/13-16':>27} "
              f"{'exact cand. kept':>16} {'hold CPU s':>13} {'longest':>7}")
        for r in scale:
            by = "/".join("-" if v is None else f"{v:.3f}"
                          for v in r["new_recall_of_old_found_by_bits"].values())  # type: ignore[attr-defined]
            held_cpu = r["hold_cpu_s_so_far"]
            print(f"{r['held']:>9,} {r['lists']:>5} {r['candidates_within_bits_per_photo']:>11} "
                  f"{r['old_cpu_ms_per_photo']:>8.3f} {r['new_cpu_ms_per_photo']:>8.3f} "
                  f"{r['old_recall']:>7.3f} {r['new_recall']:>7.3f} "
                  f"{r['new_recall_of_old_found']:>14.3f} {by:>27} "
                  f"{r['old_candidates_kept']:>16.3f} "
                  f"{held_cpu['old']:>6.2f} {held_cpu['new']:>6.2f} "  # type: ignore[index]
                  f"{r['lists_longest_hold_cpu_s_so_far']:>7.2f}")
    false = rule(neg_bits, neg_cos)
    if false.any():
        print("\ndistinct pairs the default rule takes for reposts (look at them: some are "
              "the same garment photographed twice):")
        for i, j in zip(rows_i[false], rows_j[false], strict=True):
            print(f"  {pool[i].name} / {pool[j].name}  contributors {pool[i].contributor}/"
                  f"{pool[j].contributor}  {bits_all[i, j]} bits  cos {cos_all[i, j]:.3f}")
    print(f"\n{report['seconds']['total']} s; {report['date']}; {report['machine']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
