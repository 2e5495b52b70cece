"""Style profile from several photos: several prototypes, not only the mean.

The photos' vectors are grouped by average-linkage clustering on cosine distance (groups split
where they are further apart than `settings.profile_distance`, at most `max_prototypes`
groups). Each group's mean is a prototype; each prototype is queried (`recommend`: colour
weight and diversity as every query), and the result lists are interleaved in proportion to
the groups' sizes (D'Hondt order), so a shopper who likes both dresses and boots gets both.
With one prototype this is the mean-vector profile.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from lookalike.catalog import Catalog, Filters, Result
from lookalike.catalog.sorting import SORTS, sort_positions
from lookalike.errors import LookalikeError
from lookalike.recommend.query import Query, ranking_bound, recommend

__all__ = ["cluster_profile", "interleave", "profile_search"]


def _unit_rows(m: NDArray[np.float32]) -> NDArray[np.float32]:
    norms = np.linalg.norm(m, axis=1, keepdims=True)
    out: NDArray[np.float32] = (m / np.where(norms > 0, norms, 1.0)).astype(np.float32)
    return out


def cluster_profile(
    vectors: NDArray[np.float32], max_prototypes: int, distance: float
) -> list[list[int]]:
    """Groups of photo positions, largest first (average linkage, cosine distance)."""
    n = len(vectors)
    if n == 0:
        return []
    unit = _unit_rows(np.asarray(vectors, dtype=np.float32).reshape(n, -1))
    groups: list[list[int]] = [[i] for i in range(n)]
    sims = unit @ unit.T
    while len(groups) > 1:
        best, pair = -np.inf, (0, 1)
        for a in range(len(groups)):
            for b in range(a + 1, len(groups)):
                link = float(sims[np.ix_(groups[a], groups[b])].mean())
                if link > best:
                    best, pair = link, (a, b)
        if 1.0 - best > distance and len(groups) <= max(1, max_prototypes):
            break
        a, b = pair
        groups[a] = groups[a] + groups[b]
        del groups[b]
    return sorted(groups, key=lambda g: (-len(g), min(g)))


def interleave(lists: Sequence[Sequence[Result]], sizes: Sequence[int], k: int) -> list[Result]:
    """Merge result lists: the list with the highest size/(taken+1) goes next; an item already
    taken (from another list) is skipped."""
    taken = [0] * len(lists)
    cursor = [0] * len(lists)
    seen: set[int] = set()
    out: list[Result] = []
    while len(out) < k:
        live = [i for i in range(len(lists)) if cursor[i] < len(lists[i])]
        if not live:
            break
        i = max(live, key=lambda j: (sizes[j] / (taken[j] + 1), -j))
        while cursor[i] < len(lists[i]) and lists[i][cursor[i]].item.rowid in seen:
            cursor[i] += 1
        if cursor[i] >= len(lists[i]):
            continue
        hit = lists[i][cursor[i]]
        cursor[i] += 1
        taken[i] += 1
        seen.add(hit.item.rowid)
        out.append(hit)
    return out


def profile_search(
    catalog: Catalog,
    vectors: NDArray[np.float32],
    k: int = 10,
    filters: Filters | None = None,
    max_prototypes: int = 3,
    exclude: Sequence[int] = (),
    *,
    palettes: Sequence[NDArray[np.float32]] | None = None,
    colour_weight: float | None = None,
    diversity: float | None = None,
    sort: str = "relevance",
) -> list[Result]:
    """Items for a style profile of several photos: one query per prototype, interleaved.

    `palettes` (one per photo, e.g. `photo_palette`) give each prototype the mean garment
    colours of its photos, matched with `colour_weight`; both it and `diversity` default to
    the settings' as in `recommend`. A result's score is its rank score within its prototype.
    `sort` (other than relevance) orders the interleaved best `ranking_bound` look-alikes and
    returns the first k of them."""
    mat = np.asarray(vectors, dtype=np.float32)
    if mat.ndim == 1:
        mat = mat[None]
    if len(mat) == 0:
        raise LookalikeError("a style profile needs at least one photo")
    if palettes is not None and len(palettes) != len(mat):
        raise LookalikeError(f"one palette per photo: {len(palettes)} for {len(mat)} photos")
    if sort not in SORTS:
        raise LookalikeError(f"unknown sort {sort!r}; sorts: {', '.join(SORTS)}")
    depth = k if sort == "relevance" else max(k, ranking_bound(catalog.settings, diversity, sort))
    groups = cluster_profile(mat, max_prototypes, catalog.settings.profile_distance)
    prototypes = _unit_rows(np.stack([mat[g].mean(axis=0) for g in groups]))
    lists = []
    for group, prototype in zip(groups, prototypes, strict=True):
        query = Query(positives=[prototype], colour_weight=colour_weight, diversity=diversity)
        pals = [palettes[i] for i in group if palettes[i].any()] if palettes is not None else []
        if pals:
            query.positive_palettes.append(np.mean(pals, axis=0).astype(np.float32))
        lists.append(recommend(catalog, query, depth, filters, exclude))
    merged = interleave(lists, [len(g) for g in groups], depth)
    if sort == "relevance":
        return merged[:k]
    values = catalog.store.sort_values([r.item.rowid for r in merged], sort)
    return [merged[p] for p in sort_positions(values, sort)][:k]
