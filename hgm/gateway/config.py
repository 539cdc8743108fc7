"""How a gateway is set up: which model, where it listens, what it may spend."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping


@dataclass(frozen=True)
class BudgetLimit:
    """A ceiling on total tokens (prompt + completion) and/or dollars; None = no ceiling."""

    tokens: int | None = None
    cost: float | None = None


@dataclass(frozen=True)
class GatewayConfig:
    """Everything `start_gateway` needs.

    `model` picks the backend: a litellm model (`openai/gpt-4o-mini`, `anthropic/...`,
    `ollama/...`, `hosted_vllm/...` with `api_base`), `local/smollm2`, `local/PATH.gguf`,
    `scripted:FILE` or `replay:DIR`. Agents name the model `alias`; requests naming a key
    of `aliases` go to that model spec instead, any other name goes to `model`.

    `tag_budgets` keys are `"KEY"` (a limit for every value of tag KEY separately, e.g.
    `"node"`) or `"KEY=VALUE"` (a limit for that one value, e.g. `"purpose=diagnose"`).
    """

    model: str
    alias: str = "hgm"
    aliases: Mapping[str, str] = field(default_factory=dict)
    socket_path: str | None = None  # None: a fresh directory under the temp dir
    tcp_port: int | None = None  # None: no TCP listener; 0: any free loopback port
    api_base: str | None = None
    run_tags: Mapping[str, str] = field(default_factory=dict)  # added to every call, win over the header
    run_budget: BudgetLimit = field(default_factory=BudgetLimit)
    tag_budgets: Mapping[str, BudgetLimit] = field(default_factory=dict)
    grammar: bool | None = None  # action-format grammar; None = on for local models only
    default_max_tokens: int | None = None  # when a request names none (local models: 256)
    max_tokens_cap: int | None = None  # hard ceiling on any request's max_tokens
    n_ctx: int = 4096  # context window of local models
    n_threads: int | None = None  # CPU threads of local models (None: llama.cpp's choice)
    temperature: float | None = None  # default when a request names none
    seed: int | None = None  # default when a request names none
    retry_attempts: int = 4
    retry_initial_wait: float = 1.0
    retry_max_wait: float = 30.0
    request_timeout: float = 300.0
    max_body_bytes: int = 8_000_000


def run_gateway_config(
    model: str,
    *,
    api_base: str | None = None,
    run_usd: float | None = None,
    attempt_usd: float | None = None,
    seed: int | None = None,
    evaluation_tokens: int | None = None,
    evaluation_usd: float | None = None,
    socket_path: str | None = None,
) -> GatewayConfig:
    """The gateway of a run or an `hgm eval`: its model, server, run budget and caps.

    The per-attempt cap is a dollar limit on every value of the `attempt` tag (one agent
    attempt of an evaluation, or one expansion); the evaluation caps limit every value of
    the `evaluation` tag (all attempts of one evaluation and hgm's own calls for them).
    """
    tag_budgets = {}
    if attempt_usd:
        tag_budgets["attempt"] = BudgetLimit(cost=attempt_usd)
    if evaluation_tokens or evaluation_usd:
        tag_budgets["evaluation"] = BudgetLimit(tokens=evaluation_tokens, cost=evaluation_usd)
    return GatewayConfig(
        model=model,
        api_base=api_base,
        run_budget=BudgetLimit(cost=run_usd),
        tag_budgets=tag_budgets,
        seed=seed,
        socket_path=socket_path,
    )
