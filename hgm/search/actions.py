"""What a policy may ask for, and the policy interface itself.

A policy is any object with `name` and `next_action(view, rng)`. It must not mutate the
view and must only propose pairs (node, task) that are not yet seen: the scheduler
checks both and refuses anything else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from hgm.search.state import SearchView


@dataclass(frozen=True)
class Evaluate:
    """Run node `node_id`'s agent on task `task_id` and record the 0/1 outcome."""

    node_id: int
    task_id: str


@dataclass(frozen=True)
class Expand:
    """Let node `node_id`'s agent improve itself into a child (which may fail)."""

    node_id: int


@dataclass(frozen=True)
class Wait:
    """Nothing useful can start now; ask again after some in-flight work finishes."""


Action = Evaluate | Expand | Wait


@runtime_checkable
class Policy(Protocol):
    name: str

    def next_action(self, view: SearchView, rng: np.random.Generator) -> Action: ...
