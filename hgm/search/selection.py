"""Final-choice rules: which agent version to ship when the search ends.

- `raw-mean`: highest own success rate (ties: more evaluations first).
- `best-belief` (HGM paper): highest `quantile` (default 5%) of Beta(1+s, 1+f) on the
  node's own measures. Conservative: it favours well-measured nodes, so it tends to
  pass over the newest, best children, which have the fewest measures.
- `lineage`: a lineage-aware estimate. Each node's skill gets a Beta prior centred on
  its parent's estimate, worth `prior_strength` pseudo-evaluations, so a child with few
  measures is judged as "like its parent, corrected by its own results" rather than by
  two or three coin flips. Estimates are computed root-down; the node with the highest
  posterior mean wins.

All rules read a `SearchView` and only consider nodes with at least one finished
evaluation (or the first node when nothing was measured yet).
"""

from __future__ import annotations

import numpy as np

from hgm.search.state import SearchView

RULES = ("raw-mean", "best-belief", "lineage")
DEFAULT_RULE = "lineage"
DEFAULT_QUANTILE = 0.05
DEFAULT_PRIOR_STRENGTH = 6.0


def _log_factorials(n: int) -> np.ndarray:
    return np.concatenate([[0.0], np.cumsum(np.log(np.arange(1, n + 1, dtype=float)))])


def beta_quantile(successes: np.ndarray, failures: np.ndarray, q: float) -> np.ndarray:
    """The `q`-quantile of Beta(1+s, 1+f) for integer counts, exactly, vectorised.

    For integers a = 1+s, b = 1+f the Beta CDF is a binomial tail,
    `I_x(a, b) = P(Binomial(a+b-1, x) >= a)`, which is bisected to 1e-9.
    """
    s = np.asarray(successes, dtype=np.int64)
    f = np.asarray(failures, dtype=np.int64)
    if s.size == 0:
        return np.zeros(0)
    n = s + f + 1  # a + b - 1
    n_max = int(n.max())
    logfact = _log_factorials(n_max)
    j = np.arange(n_max + 1)
    # log C(n, j) per node and j; terms with j < a or j > n are masked out.
    valid = (j[None, :] >= (s + 1)[:, None]) & (j[None, :] <= n[:, None])
    jj = np.minimum(j[None, :], n[:, None])
    logc = logfact[n][:, None] - logfact[jj] - logfact[n[:, None] - jj]
    lo = np.zeros(s.shape)
    hi = np.ones(s.shape)
    for _ in range(34):
        x = 0.5 * (lo + hi)
        with np.errstate(divide="ignore"):
            lx, l1x = np.log(x)[:, None], np.log1p(-x)[:, None]
        terms = np.where(valid, np.exp(logc + j[None, :] * lx + (n[:, None] - jj) * l1x), 0.0)
        cdf = terms.sum(axis=1)
        below = cdf < q
        lo = np.where(below, x, lo)
        hi = np.where(below, hi, x)
    return 0.5 * (lo + hi)


def lineage_estimates(
    parent: np.ndarray, successes: np.ndarray, failures: np.ndarray, prior_strength: float = DEFAULT_PRIOR_STRENGTH
) -> np.ndarray:
    """Posterior mean skill per node with a Beta prior centred on the parent's estimate.

    `parent` holds each node's parent position (-1 for a root). Roots use the uniform
    prior Beta(1, 1). Parents must precede their children in position order, so one
    pass suffices.
    """
    s = np.asarray(successes, dtype=float)
    n = s + np.asarray(failures, dtype=float)
    est = np.empty(len(s))
    for i in range(len(s)):
        p = int(parent[i])
        if p < 0:
            est[i] = (s[i] + 1.0) / (n[i] + 2.0)
        else:
            est[i] = (s[i] + prior_strength * est[p]) / (n[i] + prior_strength)
    return est


def scores_from_counts(
    parent: np.ndarray,
    successes: np.ndarray,
    failures: np.ndarray,
    rule: str = DEFAULT_RULE,
    *,
    quantile: float = DEFAULT_QUANTILE,
    prior_strength: float = DEFAULT_PRIOR_STRENGTH,
) -> np.ndarray:
    """Score per node under `rule` (higher is better); -inf for unmeasured nodes.

    Works on plain arrays (parent position, own successes, own failures, parents first)
    so the live search and a run read back from the archive share one implementation.
    """
    s = np.asarray(successes)
    f = np.asarray(failures)
    n = s + f
    if rule == "raw-mean":
        scores = s / np.maximum(n, 1)
    elif rule == "best-belief":
        scores = beta_quantile(s, f, quantile)
    elif rule == "lineage":
        scores = lineage_estimates(parent, s, f, prior_strength)
    else:
        raise ValueError(f"unknown selection rule {rule!r}; choose one of {', '.join(RULES)}")
    return np.where(n > 0, scores, -np.inf)


def best_position(scores: np.ndarray, n_evals: np.ndarray) -> int:
    """Position of the highest score; ties go to more evaluations, then the older node."""
    if not np.isfinite(scores).any():
        return 0
    # lexsort: last key is primary. Highest score, then most evaluations, then oldest.
    return int(np.lexsort((np.arange(len(scores)), -np.asarray(n_evals), -scores))[0])


def rule_scores(view: SearchView, rule: str = DEFAULT_RULE, **params: float) -> np.ndarray:
    """Score per node of a search view under `rule`; -inf for unmeasured nodes."""
    return scores_from_counts(view.parent, view.own_successes, view.own_failures, rule, **params)


def choose_position(view: SearchView, rule: str = DEFAULT_RULE, **params: float) -> int:
    """Position of the node to ship under `rule`; ties go to the better-measured node."""
    if view.n_nodes == 0:
        raise ValueError("the search state has no node")
    return best_position(rule_scores(view, rule, **params), view.own_evals)


def choose_node(view: SearchView, rule: str = DEFAULT_RULE, **params: float) -> int:
    """Id of the node to ship under `rule`."""
    return int(view.node_ids[choose_position(view, rule, **params)])


def top_positions(view: SearchView, k: int, rule: str = DEFAULT_RULE, **params: float) -> np.ndarray:
    """Positions of the `k` best measured nodes under `rule`, best first."""
    scores = rule_scores(view, rule, **params)
    order = np.lexsort((np.arange(view.n_nodes), -view.own_evals, -scores))
    order = order[np.isfinite(scores[order])]
    return order[:k]
