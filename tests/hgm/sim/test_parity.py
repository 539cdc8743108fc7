"""`hgm run` and `hgm simulate` build the same policies, with the same defaults, from the same config."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from archive.run import Run
from hgm.cli import build_app
from hgm.config import PolicyConfig, build_config
from hgm.loop import scheduler as scheduler_module
from hgm.loop.session import confirmation_plan, make_scheduler, seed_agent_tree
from hgm.policies import make_policy
from hgm.search.confirm import plan_for
from hgm.search.state import SearchState
from hgm.sim.landscape import load_landscape
from hgm.sim.simulation import build_policy, simulate_run

POLICIES = ("hgm", "dgm", "greedy", "uniform")
RUN_TOML = """
seed = 17
[budget]
evals = 400
[policy]
alpha = 0.55
n_pseudo_descendant_evals = 10
dgm_first_batch = 4
failed_expansions = "count"
confirm = true
confirm_share = 0.2
final_rule = "raw-mean"
"""


def _state(n_tasks: int = 60) -> SearchState:
    st = SearchState(tuple(f"t{i}" for i in range(n_tasks)))
    st.add_node(0, None)
    return st


@pytest.mark.parametrize("name", POLICIES)
def test_policy_defaults_have_one_source(name: str) -> None:
    """A policy built with no options is the policy `hgm run` builds from the default config."""
    assert make_policy(name).config == make_policy(name, PolicyConfig().options_for(name, 0)).config


@pytest.mark.parametrize("name", POLICIES)
def test_run_and_simulation_build_equal_policies_from_one_config(tmp_path: Path, name: str) -> None:
    toml = tmp_path / "run.toml"
    toml.write_text(RUN_TOML + f'name = "{name}"\n', encoding="utf-8")
    config = build_config(toml)
    in_run = make_scheduler(config, _state(), 0).policy
    in_simulation = build_policy(name, config.policy, config.seed)
    assert type(in_run) is type(in_simulation) and in_run.config == in_simulation.config
    assert in_run.config.task_order_seed == 17  # the run's seed orders its tasks, in both


def test_simulate_reads_a_run_config_exactly_as_run_does(tmp_path: Path) -> None:
    toml = tmp_path / "run.toml"
    toml.write_text(RUN_TOML, encoding="utf-8")
    out = CliRunner().invoke(build_app(), ["simulate", "--config", str(toml), "-p", "hgm", "--landscape",
                                           "lineage-drift", "--budget-evals", "30", "--seeds", "1", "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["settings"] == build_config(toml).policy.model_dump(mode="json")
    flags = CliRunner().invoke(build_app(), ["simulate", "--config", str(toml), "-p", "hgm", "--alpha", "0.7",
                                             "--no-confirm", "--budget-evals", "30", "--seeds", "1", "--json"])
    settings = json.loads(flags.stdout)["settings"]
    assert settings["alpha"] == 0.7 and settings["confirm"] is False and settings["dgm_first_batch"] == 4


def test_run_and_simulation_plan_the_same_confirmation(tmp_path: Path) -> None:
    config = build_config(overrides={"seed": 5, "budget": {"evals": 400}, "policy": {"confirm": True}})
    tasks = [f"t{i}" for i in range(60)]
    with Run.create(tmp_path / "run", config.frozen(), seed_agent_tree(tmp_path / "seed")) as run:
        planned = confirmation_plan(run, config, tasks, first_session=True)
        assert planned is not None and planned == plan_for(config.policy, tasks, 400, 5)
        assert confirmation_plan(run, config, tasks, first_session=False) == planned  # read back, not redrawn


def test_simulation_orders_seed_tasks_by_its_seed(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[int] = []
    real = scheduler_module.Scheduler.__init__

    def spy(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        seen.append(kwargs["task_order_seed"])
        real(self, *args, **kwargs)

    from hgm.sim import simulation

    monkeypatch.setattr(simulation.Scheduler, "__init__", spy)
    simulate_run(load_landscape("lineage-drift"), "hgm", budget=20, seed=9)
    assert seen == [9]
