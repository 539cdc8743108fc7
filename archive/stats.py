"""Small statistics on 0/1 evaluations: Wilson intervals, Beta quantiles, best belief.

No scipy: the Beta quantile is found by bisection on the regularized incomplete beta
function, evaluated with its continued fraction (modified Lentz method).
"""

from __future__ import annotations

import math

from archive.tree import Tree


def wilson_interval(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """95% (by default) Wilson score interval of a success rate; (0, 1) when n == 0."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def _beta_cf(a: float, b: float, x: float) -> float:
    tiny, eps = 1e-300, 1e-15
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 10_000):
        m2 = 2 * m
        for num in (m * (b - m) * x / ((qam + m2) * (a + m2)), -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < eps:
            break
    return h


def beta_cdf(x: float, a: float, b: float) -> float:
    """Regularized incomplete beta I_x(a, b): P(X <= x) for X ~ Beta(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _beta_cf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_cf(b, a, 1.0 - x) / b


def beta_quantile(q: float, a: float, b: float, tol: float = 1e-10) -> float:
    """The q-quantile of Beta(a, b), by bisection."""
    if not 0.0 < q < 1.0:
        raise ValueError(f"quantile must be in (0, 1), got {q}")
    lo, hi = 0.0, 1.0
    while hi - lo > tol:
        mid = (lo + hi) / 2
        if beta_cdf(mid, a, b) < q:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def belief_scores(tree: Tree, quantile: float = 0.05) -> dict[int, float]:
    """Lower `quantile` of Beta(1 + successes, 1 + failures) of each node's own evaluations."""
    cache: dict[tuple[int, int], float] = {}
    scores = {}
    for node in tree.nodes.values():
        key = (node.successes, node.failures)
        if key not in cache:
            cache[key] = beta_quantile(quantile, 1 + key[0], 1 + key[1])
        scores[node.id] = cache[key]
    return scores


def best_belief(tree: Tree, quantile: float = 0.05) -> int | None:
    """The node to trust most: highest low quantile of its own evaluations' Beta posterior.

    Ties go to the node with more evaluations, then the older node. Nodes never
    evaluated are skipped; None when nothing has been evaluated.
    """
    scores = belief_scores(tree, quantile)
    candidates = [n for n in tree.nodes.values() if n.evals]
    if not candidates:
        return None
    return max(candidates, key=lambda n: (scores[n.id], len(n.evals), -n.id)).id
