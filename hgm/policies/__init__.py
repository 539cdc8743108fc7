"""Search policies: HGM, DGM, greedy and uniform, behind one interface.

`policy.next_action(view, rng) -> Evaluate | Expand | Wait`, where `view` is a read-only
`hgm.search.state.SearchView`. Build one by name with `make_policy`.
"""

from hgm.search.actions import Action, Evaluate, Expand, Policy, Wait
from hgm.policies.registry import POLICY_NAMES, make_policy

__all__ = ["Action", "Evaluate", "Expand", "Policy", "Wait", "POLICY_NAMES", "make_policy"]
