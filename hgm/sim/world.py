"""A simulated world: agent versions with hidden skill, reproducible from a seed.

Separate random streams (spawned from one seed) drive the tree's structure, the task
outcomes and the durations, so a world is reproducible from its seed whatever order
the scheduler asks in for the structure stream (children are drawn when created).
"""

from __future__ import annotations

import numpy as np

from hgm.sim.landscape import Landscape


class World:
    """Hidden truth of one simulated run. Node ids are 0, 1, 2, ... (0 is the seed)."""

    def __init__(self, landscape: Landscape, seed: int) -> None:
        self.landscape = landscape
        streams = np.random.SeedSequence(seed).spawn(3)
        self._structure = np.random.default_rng(streams[0])
        self._outcomes = np.random.default_rng(streams[1])
        self._durations = np.random.default_rng(streams[2])
        self.task_ids = tuple(f"task-{i:03d}" for i in range(landscape.n_tasks))
        self._task_index = {t: i for i, t in enumerate(self.task_ids)}
        if landscape.task_model == "logistic":
            self.difficulty = self._structure.normal(landscape.difficulty_mean, landscape.difficulty_sd, landscape.n_tasks)
        else:
            self.difficulty = np.zeros(landscape.n_tasks)
        self.skill: list[float] = [landscape.root_skill]
        self.drift: list[float] = [landscape.root_drift]
        self.parent: list[int] = [-1]
        self._true: list[float] = [self._expected_rate(landscape.root_skill)]

    @property
    def n_nodes(self) -> int:
        return len(self.skill)

    def expand(self, parent: int) -> int | None:
        """Try to create a child of `parent`; its id, or None if the expansion failed."""
        if not 0 <= parent < self.n_nodes:
            raise ValueError(f"world has no node {parent}")
        ls = self.landscape
        r = self._structure
        failed = r.random() < ls.expansion_failure_prob
        jump = r.normal(0.0, ls.jump_sd) if ls.jump_sd > 0 else 0.0
        step = r.normal(0.0, ls.drift_step_sd) if ls.drift_step_sd > 0 else 0.0
        if failed:
            return None
        drift = ls.drift_persistence * self.drift[parent] + step + ls.drift_jump_coupling * jump
        skill = float(np.clip(self.skill[parent] + drift + jump, 0.0, 1.0))
        self.skill.append(skill)
        self.drift.append(drift)
        self.parent.append(parent)
        self._true.append(self._expected_rate(skill))
        return self.n_nodes - 1

    def resolve_probability(self, node: int, task_id: str) -> float:
        skill = self.skill[node]
        if self.landscape.task_model == "uniform":
            return skill
        d = self.difficulty[self._task_index[task_id]]
        return float(1.0 / (1.0 + np.exp(-self.landscape.logistic_scale * (skill - d))))

    def evaluate(self, node: int, task_id: str) -> bool:
        """One Bernoulli draw: does version `node` resolve `task_id`?"""
        return bool(self._outcomes.random() < self.resolve_probability(node, task_id))

    def true_skill(self, node: int) -> float:
        """Expected fraction of the task set the version resolves."""
        return self._true[node]

    def true_skills(self) -> np.ndarray:
        return np.asarray(self._true)

    def duration(self, kind: str) -> float:
        ls = self.landscape
        mean, cv = (ls.eval_time_mean, ls.eval_time_cv) if kind == "eval" else (ls.expand_time_mean, ls.expand_time_cv)
        if cv <= 0:
            return mean
        sigma2 = np.log1p(cv * cv)
        return float(self._durations.lognormal(np.log(mean) - sigma2 / 2.0, np.sqrt(sigma2)))

    def _expected_rate(self, skill: float) -> float:
        if self.landscape.task_model == "uniform":
            return skill
        z = self.landscape.logistic_scale * (skill - self.difficulty)
        return float(np.mean(1.0 / (1.0 + np.exp(-z))))
