"""A simulated world: agent versions with hidden skill, reproducible from a seed.

The world is a fixed function of its seed, whatever a policy asks of it and in which
order: every random draw is keyed by where it happens in the tree, not by when.
A version is named by its path from the seed (`()` is the seed, `(2, 0)` the first attempt
on the seed's third attempt's child), and

- the k-th expansion attempt on a version draws from a stream keyed by (its path, k):
  whether it fails, the child's jump and drift step, and how long it takes;
- a version's outcome on each task (a uniform number per task, compared with its resolve
  probability) and its evaluation durations come from a stream keyed by its path;
- task difficulties come from a stream of their own.

So two policies run on the same seed meet the same world (common random numbers): the
same child behind the same attempt, the same outcome on the same task. Differences
between policies at equal seeds are differences of choices, not of luck.
"""

from __future__ import annotations

import numpy as np

from hgm.sim.landscape import Landscape

_TASKS, _NODE, _ATTEMPT, _EXPAND_TIME = 0, 1, 2, 3  # first spawn-key element of each kind of stream


class World:
    """Hidden truth of one simulated run. Node ids are 0, 1, 2, ... in creation order (0 is the seed)."""

    def __init__(self, landscape: Landscape, seed: int) -> None:
        self.landscape = landscape
        self.seed = int(seed)
        self.task_ids = tuple(f"task-{i:03d}" for i in range(landscape.n_tasks))
        self._task_index = {t: i for i, t in enumerate(self.task_ids)}
        if landscape.task_model == "logistic":
            rng = self._stream(_TASKS)
            self.difficulty = rng.normal(landscape.difficulty_mean, landscape.difficulty_sd, landscape.n_tasks)
        else:
            self.difficulty = np.zeros(landscape.n_tasks)
        self.skill: list[float] = []
        self.drift: list[float] = []
        self.parent: list[int] = []
        self.paths: list[tuple[int, ...]] = []
        self._attempts: list[int] = []
        self._uniforms: list[np.ndarray] = []
        self._eval_durations: list[np.ndarray | None] = []
        self._true: list[float] = []
        self._add(-1, (), landscape.root_skill, landscape.root_drift)

    @property
    def n_nodes(self) -> int:
        return len(self.skill)

    def _stream(self, *key: int) -> np.random.Generator:
        return np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=key))

    def _add(self, parent: int, path: tuple[int, ...], skill: float, drift: float) -> int:
        ls = self.landscape
        rng = self._stream(_NODE, *path)
        self._uniforms.append(rng.random(ls.n_tasks))
        self._eval_durations.append(self._lognormal(rng, ls.eval_time_mean, ls.eval_time_cv, ls.n_tasks))
        self.skill.append(skill)
        self.drift.append(drift)
        self.parent.append(parent)
        self.paths.append(path)
        self._attempts.append(0)
        self._true.append(self._expected_rate(skill))
        return self.n_nodes - 1

    def reserve_attempt(self, parent: int) -> int:
        """Number the next expansion attempt on `parent` (0, 1, ...); it keys that attempt's draws."""
        if not 0 <= parent < self.n_nodes:
            raise ValueError(f"world has no node {parent}")
        self._attempts[parent] += 1
        return self._attempts[parent] - 1

    def expand(self, parent: int, attempt: int | None = None) -> int | None:
        """Carry out expansion attempt `attempt` (default: the next) on `parent`; the child's id, or None if it failed."""
        if attempt is None:
            attempt = self.reserve_attempt(parent)
        ls = self.landscape
        r = self._stream(_ATTEMPT, *self.paths[parent], attempt)
        failed = r.random() < ls.expansion_failure_prob
        jump = r.normal(0.0, ls.jump_sd) if ls.jump_sd > 0 else 0.0
        step = r.normal(0.0, ls.drift_step_sd) if ls.drift_step_sd > 0 else 0.0
        if failed:
            return None
        drift = ls.drift_persistence * self.drift[parent] + step + ls.drift_jump_coupling * jump
        skill = float(np.clip(self.skill[parent] + drift + jump, 0.0, 1.0))
        return self._add(parent, (*self.paths[parent], attempt), skill, drift)

    def expansion_duration(self, parent: int, attempt: int) -> float:
        """How long expansion attempt `attempt` on `parent` takes."""
        ls = self.landscape
        if ls.expand_time_cv <= 0:
            return ls.expand_time_mean
        r = self._stream(_EXPAND_TIME, *self.paths[parent], attempt)
        duration = self._lognormal(r, ls.expand_time_mean, ls.expand_time_cv, 1)
        return ls.expand_time_mean if duration is None else float(duration[0])

    def resolve_probability(self, node: int, task_id: str) -> float:
        skill = self.skill[node]
        if self.landscape.task_model == "uniform":
            return skill
        d = self.difficulty[self._task_index[task_id]]
        return float(1.0 / (1.0 + np.exp(-self.landscape.logistic_scale * (skill - d))))

    def evaluate(self, node: int, task_id: str) -> bool:
        """Does version `node` resolve `task_id`? The same answer every time it is asked."""
        return bool(self._uniforms[node][self._task_index[task_id]] < self.resolve_probability(node, task_id))

    def eval_duration(self, node: int, task_id: str) -> float:
        durations = self._eval_durations[node]
        return self.landscape.eval_time_mean if durations is None else float(durations[self._task_index[task_id]])

    def true_skill(self, node: int) -> float:
        """Expected fraction of the task set the version resolves."""
        return self._true[node]

    def true_skills(self) -> np.ndarray:
        return np.asarray(self._true)

    def node_at(self, path: tuple[int, ...]) -> int | None:
        """The id of the version at `path`, if it has been created."""
        try:
            return self.paths.index(tuple(path))
        except ValueError:
            return None

    @staticmethod
    def _lognormal(rng: np.random.Generator, mean: float, cv: float, size: int) -> np.ndarray | None:
        """Durations with the given mean and coefficient of variation (None when cv is 0: always the mean)."""
        if cv <= 0:
            return None
        sigma2 = np.log1p(cv * cv)
        return rng.lognormal(np.log(mean) - sigma2 / 2.0, np.sqrt(sigma2), size)

    def _expected_rate(self, skill: float) -> float:
        if self.landscape.task_model == "uniform":
            return skill
        z = self.landscape.logistic_scale * (skill - self.difficulty)
        return float(np.mean(1.0 / (1.0 + np.exp(-z))))
