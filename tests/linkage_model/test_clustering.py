"""Clusters do not chain two people through one weak link that disagrees on date of birth."""
from __future__ import annotations

import numpy as np

from linkage.clustering import break_chains, dobs_close


def _run(edges, dob, strong=0.999):
    left = np.array([e[0] for e in edges]); right = np.array([e[1] for e in edges]); p = np.array([e[2] for e in edges])
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(dob)
    labels = connected_components(coo_matrix((np.ones(len(left)), (left, right)), shape=(n, n)), directed=False)[1]
    new, stats = break_chains(labels, left, right, p, dob, strong=strong)
    return [len(set(new[list(group)])) for group in ([0, 1, 2], [3, 4, 5])], new, stats


PARENT, CHILD = "1980-05-03", "2009-11-20"


def test_household_chain_through_one_weak_edge_is_cut():
    # records 0-2: the parent; 3-5: the child; 2-3 share a borrowed SSN (weak edge)
    dob = [PARENT, PARENT, None, CHILD, CHILD, None]
    edges = [(0, 1, 1.0), (1, 2, 0.99999), (2, 3, 0.93), (3, 4, 1.0), (4, 5, 0.9999)]
    _, labels, stats = _run(edges, dob)
    assert labels[0] == labels[1] == labels[2] and labels[3] == labels[4] == labels[5] and labels[0] != labels[3]
    assert stats["components_split"] == 1


def test_a_typo_in_one_dob_does_not_split_a_person():
    dob = [PARENT, "1980-05-08", PARENT]  # a wrong day: close
    _, labels, stats = _run([(0, 1, 0.95), (1, 2, 0.95)], dob + [None, None, None])
    assert labels[0] == labels[1] == labels[2] and stats["components_split"] == 0
    assert dobs_close("1980-05-03", "1980-03-05")  # day and month swapped


def test_strong_edges_and_cycles_are_never_cut():
    dob = [PARENT, PARENT, CHILD, CHILD, None, None]
    # the 1-2 edge is certain (same SSN and names): kept whatever the dobs say
    _, labels, _ = _run([(0, 1, 1.0), (1, 2, 0.9995), (2, 3, 1.0)], dob)
    assert len(set(labels[:4])) == 1
    # a weak link that is not a bridge (two paths join the sides) is not cut either
    _, labels, _ = _run([(0, 1, 1.0), (1, 2, 0.95), (0, 3, 0.95), (2, 3, 1.0)], dob)
    assert len(set(labels[:4])) == 1
