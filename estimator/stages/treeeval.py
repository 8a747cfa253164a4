"""Fast evaluation of fitted scikit-learn tree ensembles: the classify stage's inner loop.

:func:`pack_forest` flattens every tree of a fitted forest into one set of contiguous node
arrays; :meth:`PackedForest.predict_proba` walks them in a compiled (numba) loop that
releases the GIL, so dask threads classify blocks in parallel. It gives scikit-learn's
``predict_proba`` decisions exactly:

* scikit-learn compares float32 features with float64 thresholds, ``x <= t``. For float32
  ``x`` that is the same as ``x <= t32`` with ``t32`` the largest float32 not above ``t``,
  so thresholds are stored as float32 (half the memory traffic) without changing a split.
* NaN features go where scikit-learn sends them (``missing_go_to_left``).
* Leaf values are ``tree_.value``, which since scikit-learn 1.4 holds each leaf's
  (weighted) class fractions: a single tree's ``predict_proba`` returns them unchanged, a
  forest's is their mean over the trees. They are summed in float64 in tree order, as
  scikit-learn does with ``n_jobs=1``, then divided by the number of trees; only the result
  is rounded to float32.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import njit
from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier
from sklearn.tree import DecisionTreeClassifier, ExtraTreeClassifier

__all__ = ["NODE", "PackedForest", "pack_forest"]

#: A tree node: the feature it tests; go left when ``x <= threshold`` (the largest float32
#: not above scikit-learn's float64 threshold; +inf at leaves); the left child, with the
#: right child next to it (a leaf is its own left child, so a walk that has reached its
#: leaf stays there); and whether a NaN feature goes left (1 at leaves).
NODE = np.dtype([("feature", np.int32), ("threshold", np.float32), ("left", np.int32), ("missing_left", np.int32)])

#: Rows per chunk: each tree is walked for a chunk of rows before the next tree, so the
#: chunk's feature rows (128 x 33 features, 17 KiB) stay in L1 cache. Measured 32 to 4096:
#: small chunks suit small forests, large ones forests that do not fit in cache.
_CHUNK = 128
#: Exact types only: a subclass may override ``predict_proba``.
_FORESTS = (RandomForestClassifier, ExtraTreesClassifier)
_TREES = (DecisionTreeClassifier, ExtraTreeClassifier)


@dataclass(frozen=True, eq=False)
class PackedForest:
    """All trees of a fitted classifier in flat read-only arrays, tree ``k`` from node ``roots[k]``."""

    n_classes: int
    """Number of classes; ``predict_proba`` columns follow the estimator's ``classes_``."""
    n_features: int
    """Number of features the estimator was fitted on."""
    roots: np.ndarray
    """int64 ``(n_trees,)``: index of each tree's root node."""
    depth: np.ndarray
    """int64 ``(n_trees,)``: depth of each tree (steps from the root to its deepest leaf)."""
    nodes: np.ndarray
    """:data:`NODE` records ``(n_nodes,)``, 16 bytes each so that a step of a walk reads
    one cache line, in breadth-first order per tree."""
    leaf: np.ndarray
    """int32 ``(n_nodes,)``: row in ``value`` of each leaf, -1 at inner nodes."""
    value: np.ndarray
    """float64 ``(n_leaves, n_classes)``: class fractions of each leaf."""

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities, as the estimator's ``predict_proba`` but float32.

        Parameters
        ----------
        X : ndarray, shape (n, n_features)
            Features; converted to C-contiguous float32 if it is not (scikit-learn casts too).

        Returns
        -------
        ndarray, float32, shape (n, n_classes)
        """
        X = np.ascontiguousarray(X, dtype=np.float32)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ValueError(f"expected X of shape (n, {self.n_features}), got {X.shape}")
        out = np.empty((X.shape[0], self.n_classes), dtype=np.float32)
        _predict(X, self.roots, self.depth, self.nodes, self.leaf, self.value, out)
        return out


def _float32_at_most(t: np.ndarray) -> np.ndarray:
    """The largest float32 <= each float64 ``t``: for float32 ``x``, ``x <= t`` iff ``x <= result``."""
    with np.errstate(over="ignore"):  # beyond the float32 range: +-inf, then corrected below
        t32 = t.astype(np.float32)
    above = t32.astype(np.float64) > t
    t32[above] = np.nextafter(t32[above], np.float32(-np.inf))
    return t32


def pack_forest(estimator: Any) -> PackedForest:
    """Flatten a fitted random forest, extra-trees ensemble or decision tree classifier.

    Raises
    ------
    TypeError
        For any other estimator (the caller then uses ``estimator.predict_proba``), and for
        multi-output models.
    """
    if type(estimator) in _FORESTS:
        trees = [e.tree_ for e in estimator.estimators_]
    elif type(estimator) in _TREES:
        trees = [estimator.tree_]
    else:
        raise TypeError(
            f"cannot pack {type(estimator).__name__}: expected one of {[c.__name__ for c in _FORESTS + _TREES]}"
        )
    if estimator.n_outputs_ != 1:
        raise TypeError(f"cannot pack a multi-output {type(estimator).__name__} ({estimator.n_outputs_} outputs)")
    n_classes = int(estimator.n_classes_)

    nodes, leaves, values, roots = [], [], [], []
    n_nodes = n_leaves = 0
    for tree in trees:
        t_nodes, t_leaf, t_value = _pack_tree(tree, n_classes, n_nodes, n_leaves)
        nodes.append(t_nodes)
        leaves.append(t_leaf)
        values.append(t_value)
        roots.append(n_nodes)
        n_nodes += t_nodes.size
        n_leaves += t_value.shape[0]
    if n_nodes >= np.iinfo(np.int32).max:
        raise TypeError(f"cannot pack a forest of {n_nodes} nodes (int32 node indices)")
    arrays = {
        "roots": np.array(roots, dtype=np.int64),
        "depth": np.array([t.max_depth for t in trees], dtype=np.int64),
        "nodes": np.concatenate(nodes),
        "leaf": np.concatenate(leaves),
        "value": np.ascontiguousarray(np.concatenate(values), dtype=np.float64),
    }
    for a in arrays.values():
        a.flags.writeable = False
    return PackedForest(n_classes=n_classes, n_features=int(estimator.n_features_in_), **arrays)


def _pack_tree(
    tree: Any, n_classes: int, first_node: int, first_leaf: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One ``tree_`` as :data:`NODE` records (node ids from ``first_node``), the value row of
    each node (from ``first_leaf``, -1 at inner nodes) and the leaves' class fractions."""
    old = _breadth_first(tree.children_left, tree.children_right)
    new = np.empty_like(old)
    new[old] = np.arange(old.size)
    is_leaf = tree.children_left[old] < 0
    nodes = np.empty(old.size, dtype=NODE)
    nodes["feature"] = np.where(is_leaf, 0, tree.feature[old])
    nodes["threshold"] = np.where(is_leaf, np.float32(np.inf), _float32_at_most(tree.threshold[old]))
    left = first_node + new[np.maximum(tree.children_left[old], 0)]
    nodes["left"] = np.where(is_leaf, first_node + np.arange(old.size), left)
    nodes["missing_left"] = is_leaf | tree.missing_go_to_left[old].astype(bool)
    leaf = np.full(old.size, -1, dtype=np.int32)
    leaf[is_leaf] = first_leaf + np.arange(is_leaf.sum())
    return nodes, leaf, tree.value[old[is_leaf], 0, :n_classes]


def _breadth_first(children_left: np.ndarray, children_right: np.ndarray) -> np.ndarray:
    """Old node ids in the new order: breadth first, each node's two children side by side."""
    order = [np.zeros(1, dtype=np.int64)]
    while order[-1].size:
        inner = order[-1][children_left[order[-1]] >= 0]
        order.append(np.stack([children_left[inner], children_right[inner]], axis=1).ravel())
    return np.concatenate(order)


@njit(nogil=True, cache=True)
def _predict(
    X: np.ndarray,
    roots: np.ndarray,
    depth: np.ndarray,
    nodes: np.ndarray,
    leaf: np.ndarray,
    value: np.ndarray,
    out: np.ndarray,
) -> None:
    """Mean leaf value over the trees for each row of ``X``.

    Trees outer, a chunk of rows inner, and every row of the chunk walks the tree one level
    at a time without branches (leaves absorb): the walks are independent, so the CPU
    overlaps their memory loads instead of stalling on a mispredicted branch per level.
    """
    n, n_features = X.shape
    flat = X.ravel()
    n_classes = value.shape[1]
    acc = np.empty((_CHUNK, n_classes), dtype=np.float64)
    node = np.empty(_CHUNK, dtype=np.int32)
    for p0 in range(0, n, _CHUNK):
        m = min(_CHUNK, n - p0)
        # NaN routing costs 40 % of a level; most chunks have no NaN.
        has_nan = np.isnan(X[p0 : p0 + m]).any()
        acc[:m] = 0.0
        for k in range(roots.shape[0]):
            node[:m] = roots[k]
            for _ in range(depth[k]):
                # Unsigned offsets into the flat rows: no negative-index fix-up per step (30 %).
                row0 = np.uint64(p0 * n_features)
                if has_nan:
                    for i in range(m):
                        nd = nodes[node[i]]
                        v = flat[row0 + np.uint64(i * n_features + nd.feature)]
                        # Bitwise, not `or`/`and`: no branch to mispredict.
                        go_left = (v <= nd.threshold) | ((v != v) & (nd.missing_left != 0))
                        node[i] = nd.left + np.int32(not go_left)
                else:
                    for i in range(m):
                        nd = nodes[node[i]]
                        v = flat[row0 + np.uint64(i * n_features + nd.feature)]
                        node[i] = nd.left + np.int32(not (v <= nd.threshold))
            for i in range(m):
                row = leaf[node[i]]
                for c in range(n_classes):
                    acc[i, c] += value[row, c]
        for i in range(m):
            for c in range(n_classes):
                out[p0 + i, c] = acc[i, c] / roots.shape[0]
