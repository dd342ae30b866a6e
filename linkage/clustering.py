"""Clusters that do not chain people together through one weak link.

Connected components join two groups of records as soon as one edge crosses between them:
a household member's SSN on a tax record, or one record that resembles two relatives, makes
one "person" of a parent and a child. Here a component is re-examined when its records hold
dates of birth that cannot all be one person's; each bridge of it (an edge whose removal splits
it, found with SciPy's connected components) is cut when the two sides it leaves disagree on
date of birth: no date of one side is close to any date of the other (close: two of year,
month and day equal, or day and month swapped, which is what a typo or a swap does).
Sides without any date never disagree, so a record without a dob stays where it linked.
"""
from __future__ import annotations

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

# A component larger than this is left as it is (and counted): checking every edge of it
# costs its size squared, and components this large are a model problem to see in the report.
MAX_COMPONENT = 400


def dobs_close(a: str, b: str) -> bool:
    """Two ISO dates that one typo or a day-month swap can explain."""
    ya, ma, da = a[0:4], a[5:7], a[8:10]
    yb, mb, db = b[0:4], b[5:7], b[8:10]
    same = (ya == yb) + (ma == mb) + (da == db)
    return same >= 2 or (ya == yb and ma == db and da == mb)


def sides_disagree(dobs_a: set[str], dobs_b: set[str]) -> bool:
    """Both sides know a date of birth and none of one side is close to one of the other."""
    return bool(dobs_a) and bool(dobs_b) and not any(dobs_close(x, y) for x in dobs_a for y in dobs_b)


def _could_be_two_people(dobs: list[str | None]) -> bool:
    known = sorted({d for d in dobs if d})
    return any(not dobs_close(a, b) for i, a in enumerate(known) for b in known[i + 1:])


def _split(nodes: np.ndarray, edges: list[tuple[int, int, float]], dob: list[str | None], strong: float) -> list[np.ndarray]:
    """Cut disagreeing weak bridges of one component, weakest first; return its parts."""
    local = {int(n): i for i, n in enumerate(nodes)}
    live = sorted(edges, key=lambda e: e[2])
    changed = True
    while changed:
        changed = False
        for k, (u, v, p) in enumerate(live):
            if p >= strong:
                break  # sorted: every later edge is as strong
            rest = live[:k] + live[k + 1:]
            labels = _components(len(nodes), [(local[a], local[b]) for a, b, _ in rest])
            if labels[local[u]] == labels[local[v]]:
                continue  # not a bridge: another path joins its ends
            side_u = {dob[n] for n in nodes[labels == labels[local[u]]] if dob[n]}
            side_v = {dob[n] for n in nodes[labels == labels[local[v]]] if dob[n]}
            if sides_disagree(side_u, side_v):
                live = rest
                changed = True
                break
    labels = _components(len(nodes), [(local[a], local[b]) for a, b, _ in live])
    return [nodes[labels == label] for label in np.unique(labels)]


def _components(n: int, pairs: list[tuple[int, int]]) -> np.ndarray:
    if not pairs:
        return np.arange(n)
    left, right = (np.asarray(x, dtype=np.int64) for x in zip(*pairs))
    graph = coo_matrix((np.ones(len(left), dtype=np.int8), (left, right)), shape=(n, n))
    return connected_components(graph, directed=False)[1]


def break_chains(labels: np.ndarray, left: np.ndarray, right: np.ndarray, probability: np.ndarray,
                 dob: list[str | None], strong: float = 0.999, min_size: int = 3) -> tuple[np.ndarray, dict[str, int]]:
    """New component labels with disagreeing bridges cut; counts of what was examined and cut.

    Only bridges below ``strong`` match probability are cut (a pair the model is sure of, e.g.
    same SSN and names, stays together whatever one record's dob says), and only in components
    of ``min_size`` records or more: a chain needs three."""
    labels = labels.astype(np.int64).copy()
    stats = {"components_examined": 0, "components_split": 0, "components_too_large": 0}
    sizes = np.bincount(labels)
    candidates = np.flatnonzero(sizes >= min_size)
    if not len(candidates):
        return labels, stats
    order = np.argsort(labels, kind="stable")
    bounds = np.searchsorted(labels[order], candidates)
    edge_label = labels[left]
    edge_order = np.argsort(edge_label, kind="stable")
    edge_bounds_lo = np.searchsorted(edge_label[edge_order], candidates)
    edge_bounds_hi = np.searchsorted(edge_label[edge_order], candidates, side="right")
    next_label = int(labels.max()) + 1
    for c, start, e_lo, e_hi in zip(candidates, bounds, edge_bounds_lo, edge_bounds_hi):
        nodes = order[start:start + sizes[c]]
        if not _could_be_two_people([dob[n] for n in nodes]):
            continue
        if len(nodes) > MAX_COMPONENT:
            stats["components_too_large"] += 1
            continue
        stats["components_examined"] += 1
        idx = edge_order[e_lo:e_hi]
        parts = _split(nodes, [(int(left[i]), int(right[i]), float(probability[i])) for i in idx], dob, strong)
        if len(parts) > 1:
            stats["components_split"] += 1
            for part in parts[1:]:
                labels[part] = next_label
                next_label += 1
    return labels, stats
