"""Simulator: reproducible worlds, landscapes, and the real policy/scheduler code path."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from hgm.cli import build_app
from hgm.loop import scheduler as scheduler_module
from hgm.policies.hgm import HGMPolicy
from hgm.sim.landscape import LandscapeError, load_landscape, parse_landscape, shipped_landscapes
from hgm.sim.simulation import simulate_run
from hgm.sim.world import World


def test_shipped_landscapes_load() -> None:
    names = shipped_landscapes()
    assert {"default", "mismatch", "no-mismatch", "lineage-drift"} <= set(names)
    for name in names:
        assert load_landscape(name).name == name


def test_lineage_drift_is_the_specified_world() -> None:
    ls = load_landscape("lineage-drift")
    assert (ls.root_skill, ls.root_drift, ls.drift_step_sd, ls.jump_sd) == (0.10, 0.0, 0.04, 0.03)
    assert (ls.expansion_failure_prob, ls.n_tasks, ls.seed_evals, ls.task_model) == (0.05, 60, 5, "uniform")
    assert ls.drift_persistence == 1.0 and ls.drift_jump_coupling == 0.0
    flaky = load_landscape("flaky-expansions")
    assert flaky.expansion_failure_prob == 0.15 and flaky.n_tasks == 60 and flaky.root_skill == 0.10


def test_a_world_does_not_depend_on_the_order_it_is_explored_in() -> None:
    """Paired seeds: the same child behind the same attempt, the same outcome on the same task,
    whichever order a policy asks in."""
    ls = load_landscape("default")  # logistic tasks, random durations
    first, second = World(ls, 21), World(ls, 21)
    for parent in [0, 0, 1, 0, 2, 1]:  # explore breadth-first in one world ...
        if parent < first.n_nodes:
            first.expand(parent)
    for parent in [0, 0, 0]:  # ... and depth-first (and less) in the other
        second.expand(parent)
    deep = second.node_at((0,))
    if deep is not None:
        second.expand(deep)
    assert np.array_equal(first.difficulty, second.difficulty)
    common = set(first.paths) & set(second.paths)
    assert len(common) >= 3
    for path in common:
        a, b = first.node_at(path), second.node_at(path)
        assert first.skill[a] == second.skill[b] and first.true_skill(a) == second.true_skill(b)
        assert [first.evaluate(a, t) for t in first.task_ids] == [second.evaluate(b, t) for t in second.task_ids]
        assert first.eval_duration(a, "task-007") == second.eval_duration(b, "task-007")
    assert [first.evaluate(0, t) for t in first.task_ids] != [World(ls, 22).evaluate(0, t) for t in first.task_ids]


def test_paired_runs_meet_the_same_world(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every policy on a seed explores one and the same world: wherever their trees share a
    version (same path from the seed), it has the same hidden skill."""
    from hgm.sim import simulation

    worlds: dict[str, World] = {}

    class Recorded(World):
        def __init__(self, landscape, seed):  # noqa: ANN001
            super().__init__(landscape, seed)
            worlds[current] = self

    monkeypatch.setattr(simulation, "World", Recorded)
    ls = load_landscape("lineage-drift")
    for current in ("hgm", "uniform", "greedy"):
        simulate_run(ls, current, budget=150, seed=4)
    skills = {name: {path: w.skill[i] for i, path in enumerate(w.paths)} for name, w in worlds.items()}
    shared = set(skills["hgm"]) & set(skills["uniform"]) & set(skills["greedy"])
    assert len(shared) >= 3  # at least the seed's first children
    for path in shared:
        assert skills["hgm"][path] == skills["uniform"][path] == skills["greedy"][path]


def test_world_is_reproducible_from_its_seed() -> None:
    ls = load_landscape("default")

    def trace(seed: int) -> tuple[list[float], list[bool]]:
        w = World(ls, seed)
        for parent in [0, 0, 1, 2, 1, 3]:
            if parent < w.n_nodes:
                w.expand(parent)
        outcomes = [w.evaluate(n % w.n_nodes, w.task_ids[n]) for n in range(30)]
        return list(w.skill), outcomes

    assert trace(5) == trace(5)
    assert trace(5) != trace(6)
    a = simulate_run(ls, "hgm", budget=60, seed=3, workers=4)
    b = simulate_run(ls, "hgm", budget=60, seed=3, workers=4)
    assert a.chosen_skill == b.chosen_skill and a.best_skill == b.best_skill and a.n_nodes == b.n_nodes


def test_lineage_drift_child_follows_the_formula() -> None:
    ls = load_landscape("lineage-drift")
    w = World(ls, 11)
    kids = [w.expand(0) for _ in range(200)]
    ok = [k for k in kids if k is not None]
    assert 0.85 < len(ok) / len(kids) < 1.0  # 5 % failures
    drifts = np.array([w.drift[k] for k in ok])
    steps = np.array([w.skill[k] - 0.10 - w.drift[k] for k in ok if 0 < w.skill[k] < 1])
    assert abs(drifts.std() - 0.04) < 0.008 and abs(steps.std() - 0.03) < 0.006


def test_a_child_never_exists_without_its_parent() -> None:
    w = World(load_landscape("mismatch"), 1)
    rng = np.random.default_rng(0)
    for _ in range(300):
        w.expand(int(rng.integers(w.n_nodes)))
    for child in range(1, w.n_nodes):
        assert 0 <= w.parent[child] < child
    with pytest.raises(ValueError):
        w.expand(w.n_nodes)


def test_simulator_drives_the_real_scheduler_and_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    """No simulator-only copy: patching the real classes is seen by the simulator."""
    calls = {"dispatch": 0, "policy": 0}
    real_dispatch = scheduler_module.Scheduler.dispatch
    real_next = HGMPolicy.next_action

    def counting_dispatch(self):  # noqa: ANN001, ANN202
        calls["dispatch"] += 1
        return real_dispatch(self)

    def counting_next(self, view, rng):  # noqa: ANN001, ANN202
        calls["policy"] += 1
        return real_next(self, view, rng)

    monkeypatch.setattr(scheduler_module.Scheduler, "dispatch", counting_dispatch)
    monkeypatch.setattr(HGMPolicy, "next_action", counting_next)
    result = simulate_run(load_landscape("lineage-drift"), "hgm", budget=40, seed=0)
    assert calls["dispatch"] >= 40 and calls["policy"] >= 35
    assert result.evals_used == 40


@pytest.mark.parametrize("workers", [1, 16])
def test_runs_spend_exactly_the_budget(workers: int) -> None:
    for policy in ("hgm", "dgm", "greedy", "uniform"):
        r = simulate_run(load_landscape("default"), policy, budget=120, seed=2, workers=workers)
        assert r.evals_used == 120
        assert r.checkpoints[-1] == 120 and len(r.checkpoints) == len(r.best_skill)
        assert all(b >= c - 1e-12 for b, c in zip(r.best_skill, r.chosen_skill["lineage"], strict=True))


def test_bad_landscapes_get_clear_errors(tmp_path) -> None:  # noqa: ANN001
    with pytest.raises(LandscapeError, match="unknown key"):
        parse_landscape('name = "x"\nbogus = 1\n')
    with pytest.raises(LandscapeError, match="not valid TOML"):
        parse_landscape("name = ")
    with pytest.raises(LandscapeError, match="root_skill"):
        parse_landscape("root_skill = 2.0")
    with pytest.raises(LandscapeError, match="must be"):
        parse_landscape('n_tasks = "many"')
    with pytest.raises(LandscapeError, match="does not exist"):
        load_landscape(str(tmp_path / "missing.toml"))
    with pytest.raises(LandscapeError, match="no longer read"):
        parse_landscape('[policy_options.hgm]\nalpha = 0.5\n')


def test_cli_json_and_errors(tmp_path) -> None:  # noqa: ANN001
    runner = CliRunner()
    app = build_app()
    out = runner.invoke(app, ["simulate", "-p", "hgm", "-p", "greedy", "--landscape", "lineage-drift", "--budget-evals", "30", "--seeds", "3", "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert set(data["policies"]) == {"hgm", "greedy"}
    hgm = data["policies"]["hgm"]
    assert len(hgm["chosen"]["values"]) == 3 and hgm["chosen"]["ci_low"] <= hgm["chosen"]["mean"] <= hgm["chosen"]["ci_high"]
    assert set(hgm["rules"]) == {"raw-mean", "best-belief", "lineage"}
    assert hgm["curve"]["evals"][-1] == 30
    for args, needle in (
        (["--policy", "magic"], "unknown policy"),
        (["--landscape", "nowhere"], "no landscape"),
        (["--seeds", "0"], "--seeds"),
        (["--alpha", "-1"], "alpha"),
        (["--selection", "vibes"], "selection rule"),
        (["--plot", str(tmp_path / "x.txt")], ".png"),
        (["--set", "nonsense"], "KEY=VALUE"),
        (["-p", "greedy", "--set", "greedy_rule=sideways"], "greedy_rule"),
        (["--set", "bogus=1"], "no setting or selected policy option bogus"),
        (["--failed-expansions", "often"], "failed_expansions"),
        (["--config", str(tmp_path / "none.toml")], "does not exist"),
    ):
        bad = runner.invoke(app, ["simulate", *args])
        assert bad.exit_code == 2 and needle in bad.output, (args, bad.output)


def test_cli_set_passes_policy_options() -> None:
    runner = CliRunner()
    base = ["simulate", "-p", "hgm", "--landscape", "lineage-drift", "--budget-evals", "40", "--seeds", "2", "--json"]
    plain = json.loads(runner.invoke(build_app(), base).stdout)
    fast = json.loads(runner.invoke(build_app(), [*base, "--set", "alpha=0.9"]).stdout)
    assert fast["settings"]["alpha"] == 0.9 and plain["settings"]["alpha"] == 0.6
    assert fast["policies"]["hgm"]["nodes"]["mean"] > plain["policies"]["hgm"]["nodes"]["mean"]
    mean = json.loads(runner.invoke(build_app(), [*base, "-p", "greedy", "--set", "greedy_rule=mean"]).stdout)
    assert mean["options"] == {"greedy_rule": "mean"} and set(mean["paired_differences"]) == {"hgm - greedy"}


def test_cli_plot(tmp_path) -> None:  # noqa: ANN001
    pytest.importorskip("matplotlib")
    target = tmp_path / "curve.png"
    out = CliRunner().invoke(build_app(), ["simulate", "--budget-evals", "20", "--seeds", "2", "--plot", str(target)])
    assert out.exit_code == 0, out.output
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_hgm_clearly_beats_uniform_on_lineage_drift() -> None:
    """Statistical sanity check (not a benchmark): a broken policy would lose this."""
    from hgm.sim.report import run_many, summarize

    results = run_many(load_landscape("lineage-drift"), ("hgm", "uniform"), budget=150, seeds=list(range(20)))
    hgm = summarize(results["hgm"])["chosen"]["mean"]
    uniform = summarize(results["uniform"])["chosen"]["mean"]
    assert hgm > uniform + 0.1, (hgm, uniform)


def test_cli_accepts_a_landscape_file(tmp_path) -> None:  # noqa: ANN001
    world = tmp_path / "flat.toml"
    world.write_text('n_tasks = 12\nroot_skill = 0.5\n[world]\ndrift_step_sd = 0.0\njump_sd = 0.0\n', encoding="utf-8")
    out = CliRunner().invoke(build_app(), ["simulate", "-p", "uniform", "--landscape", str(world), "--budget-evals", "20", "--seeds", "2", "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert data["landscape"] == "flat"
    assert data["policies"]["uniform"]["best_in_tree"]["mean"] == pytest.approx(0.5)  # every version is the seed's copy


@pytest.mark.parametrize("workers", [1, 8])
def test_simulated_runs_confirm_on_held_out_tasks_when_asked(workers: int) -> None:
    from hgm.config import PolicyConfig

    ls = load_landscape("lineage-drift")
    plain = simulate_run(ls, "hgm", budget=400, seed=5, workers=workers)
    assert not plain.confirmed and plain.shipped == plain.final("lineage") and plain.evals_used == 400
    confirmed = simulate_run(ls, "hgm", budget=400, seed=5, workers=workers, settings=PolicyConfig(confirm=True))
    # 8 held-out tasks x (3 candidates + root + parent) reserved; a root or parent among the candidates saves some
    assert confirmed.confirmed and 400 - 2 * 8 <= confirmed.evals_used <= 400
    assert 0.0 <= confirmed.shipped <= confirmed.best_skill[-1]
    small = simulate_run(ls, "hgm", budget=150, seed=5, workers=workers, settings=PolicyConfig(confirm=True))
    assert not small.confirmed and small.evals_used == 150  # too small a budget for 5 held-out tasks
