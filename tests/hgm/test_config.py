"""Run config: defaults (the offline default), TOML + CLI overrides, one-line errors."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from hgm.config import ConfigError, RunConfig, build_config, config_from_frozen, default_run_dir
from hgm.policies.registry import policy_options


def test_defaults_are_the_offline_default() -> None:
    c = build_config()
    assert (c.suite, c.model, c.sandbox, c.policy.name) == ("mini", "local/smollm2", "auto", "hgm")
    assert c.workers >= 1 and c.budget.evals <= 12 and c.evolve.include_test_patch is False
    assert c.policy.alpha == 0.6 and c.policy.beta == 1.0 and c.policy.cooldown is False
    assert c.policy.eval_random_level == 1.0 and c.policy.n_pseudo_descendant_evals == 10_000


def test_toml_then_overrides(tmp_path: Path) -> None:
    f = tmp_path / "run.toml"
    f.write_text('model = "openai/gpt-4o-mini"\nworkers = 3\n[budget]\nevals = 50\nusd = 2.5\n[policy]\nname = "dgm"\n')
    c = build_config(f, {"workers": 5, "budget": {"evals": None, "wall_clock_s": 60}, "policy": {"name": None}})
    assert c.model == "openai/gpt-4o-mini" and c.workers == 5
    assert c.budget.evals == 50 and c.budget.usd == 2.5 and c.budget.wall_clock_s == 60
    assert c.policy.name == "dgm"


@pytest.mark.parametrize("text, words", [
    ("workers = 0\n", "workers"),
    ("[budget]\nevals = -1\n", "budget.evals"),
    ("[policy]\nname = 'best'\n", "policy.name"),
    ("colour = 'red'\n", "colour"),
    ("seed_evals = 99\n[budget]\nevals = 5\n", "seed_evals"),
    ("= broken", "not valid TOML"),
])
def test_bad_toml_is_one_line_naming_the_field(tmp_path: Path, text: str, words: str) -> None:
    f = tmp_path / "run.toml"
    f.write_text(text)
    with pytest.raises(ConfigError) as err:
        build_config(f)
    assert words in str(err.value) and "\n" not in str(err.value)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        build_config(tmp_path / "nope.toml")


def test_frozen_round_trip() -> None:
    c = build_config(overrides={"seed": 3, "policy": {"confirm": True, "options": {"greedy_rule": "mean"}}})
    again = config_from_frozen(c.frozen())
    assert again == c
    with pytest.raises(ConfigError):
        config_from_frozen({"workers": "many"})


@pytest.mark.parametrize("name", ["hgm", "dgm", "greedy", "uniform"])
def test_policy_options_are_accepted_by_the_policy(name: str) -> None:
    opts = RunConfig(policy={"name": name}).policy.policy_options(seed=4)
    assert set(opts) <= set(policy_options(name))


def test_default_run_dir_is_unique(tmp_path: Path) -> None:
    now = dt.datetime(2026, 1, 2, 3, 4, 5)
    first = default_run_dir(now, tmp_path)
    assert first == tmp_path / "20260102-030405"
    first.mkdir()
    assert default_run_dir(now, tmp_path) == tmp_path / "20260102-030405-2"


def test_executor_settings_default_to_threads_and_freeze() -> None:
    c = build_config()
    assert c.executor == "threads" and c.ray.address is None and c.ray.slot_resource == "docker_slots"
    assert c.registry is None
    ray = build_config(overrides={"executor": "ray", "ray": {"address": "auto", "max_retries": 1},
                                  "registry": "127.0.0.1:5000"})
    assert (ray.executor, ray.ray.address, ray.ray.max_retries, ray.registry) == ("ray", "auto", 1, "127.0.0.1:5000")
    assert config_from_frozen(ray.frozen()) == ray
    assert "workers" not in ray.model_fields_set  # how `hgm run` knows --workers was left to the cluster
    for bad, words in (({"executor": "k8s"}, "executor"), ({"ray": {"max_retries": -1}}, "ray.max_retries")):
        with pytest.raises(ConfigError) as err:
            build_config(overrides=bad)
        assert words in str(err.value) and "\n" not in str(err.value)
def test_evaluation_section_defaults_presets_and_limits() -> None:
    from hgm.config import build_config

    default = build_config().evaluation
    assert (default.attempts, default.generations, default.several) == (1, 1, False)  # today's single attempt
    preset = build_config(overrides={"evaluation": {"preset": "evolve", "generations": 2}}).evaluation
    assert (preset.attempts, preset.generations, preset.several) == (5, 2, True)  # the preset fills what is not given
    assert build_config(overrides={"model": "local/smollm2"}).evaluation.summary_chars("local/smollm2") == 3000
    with pytest.raises(ConfigError, match="evaluation.attempts"):
        build_config(overrides={"evaluation": {"attempts": 0}})
    with pytest.raises(ConfigError, match="evaluation.preset"):
        build_config(overrides={"evaluation": {"preset": "huge"}})


def test_operator_mix_is_checked() -> None:
    from hgm.config import build_config

    assert build_config().evolve.operators == {"revise": 1.0}
    mix = build_config(overrides={"evolve": {"operators": {"revise": 2, "recombine": 1, "refine": 1}}}).evolve.operators
    assert mix == {"revise": 2.0, "recombine": 1.0, "refine": 1.0}
    with pytest.raises(ConfigError, match="unknown operator"):
        build_config(overrides={"evolve": {"operators": {"mutate": 1}}})
    with pytest.raises(ConfigError, match="positive sum"):
        build_config(overrides={"evolve": {"operators": {"revise": 0}}})


def test_gateway_caps_per_attempt_and_per_evaluation() -> None:
    from hgm.gateway.config import BudgetLimit, run_gateway_config

    config = run_gateway_config("scripted:x", attempt_usd=2.0, evaluation_tokens=5000, evaluation_usd=4.0)
    assert config.tag_budgets == {"attempt": BudgetLimit(cost=2.0), "evaluation": BudgetLimit(tokens=5000, cost=4.0)}
    assert run_gateway_config("scripted:x").tag_budgets == {}
def test_memory_settings_and_their_prompt_budget(tmp_path: Path) -> None:
    default = build_config()
    assert default.memory.enabled and default.memory.bank is None and default.memory.k == 4
    assert default.memory.prompt_budget("local/smollm2") == 900 and default.memory.prompt_budget("openai/x") == 3000
    f = tmp_path / "run.toml"
    f.write_text('[memory]\nbank = "lessons.db"\nk = 2\nprompt_chars = 500\n')
    c = build_config(f, {"memory": {"enabled": False}})
    assert (c.memory.bank, c.memory.k, c.memory.enabled, c.memory.prompt_budget("local/x")) == ("lessons.db", 2, False, 500)
    assert config_from_frozen({k: v for k, v in c.frozen().items() if k != "memory"}).memory.enabled  # older runs
    with pytest.raises(ConfigError, match="memory.k"):
        build_config(None, {"memory": {"k": -1}})
