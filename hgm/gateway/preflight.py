"""Check a model before a run spends anything: one tiny call, one clear line when it fails.

Local, scripted and replayed models have no provider to ask. For every other model spec,
one call of one token goes straight to its backend (the gateway's own retry policy, with a
short wait): an unknown model, a missing or rejected key, or an unreachable server becomes
a `ModelCheckError` whose message says what is wrong and what to do.
"""

from __future__ import annotations

from hgm.gateway.backends import LOCAL_PREFIX, REPLAY_PREFIX, SCRIPTED_PREFIX, make_backend
from hgm.gateway.config import GatewayConfig
from hgm.gateway.redact import redact
from hgm.gateway.retry import call_with_retries
from hgm.gateway.types import BackendError, CompletionParams, Message

NO_PROVIDER = (LOCAL_PREFIX, SCRIPTED_PREFIX, REPLAY_PREFIX)
PROBE = (Message("user", "Reply with the single word: ok"),)


class ModelCheckError(RuntimeError):
    """The model cannot be used; `str(err)` is one line naming the problem and the fix."""


def check_model(model: str, api_base: str | None = None, *, attempts: int = 2, timeout: float = 60.0) -> None:
    """Raise ModelCheckError unless one tiny call to `model` succeeds (no-op for local/test models)."""
    if model.startswith(NO_PROVIDER):
        return
    where = f" at {api_base}" if api_base else ""
    try:
        backend = make_backend(model, GatewayConfig(model=model, api_base=api_base, request_timeout=timeout))
        call_with_retries(lambda: backend.complete(PROBE, CompletionParams(max_tokens=1)), attempts, 0.5, 2.0)
    except ValueError as exc:  # a spec the gateway cannot parse
        raise ModelCheckError(str(exc)) from None
    except BackendError as exc:
        raise ModelCheckError(explain(model, where, exc.status, exc.kind, redact(exc.message))) from None


def explain(model: str, where: str, status: int, kind: str, message: str) -> str:
    """One line for a failed probe: what went wrong and what to do."""
    detail = " ".join(message.split())[:300]
    lowered = detail.lower()
    if kind == "authentication_error" or status in (401, 403):
        return (f"the provider refused the key for {model}{where} (HTTP {status}): {detail}; "
                "set the provider's key (e.g. OPENAI_API_KEY) or check --api-base")
    if status == 404 or "not found" in lowered or "does not exist" in lowered or "provider not provided" in lowered \
            or "unknown model" in lowered or "llm provider" in lowered:
        return (f"unknown model {model}{where}: {detail}; check the name "
                "(provider/model, e.g. openai/gpt-4o-mini, or hosted_vllm/NAME with --api-base)")
    if status >= 500 or "connect" in lowered or "timeout" in lowered or "timed out" in lowered:
        return (f"cannot reach the model server for {model}{where} (HTTP {status}): {detail}; "
                "start the server or fix --api-base, then try again")
    return f"the model {model}{where} answered HTTP {status}: {detail}; check --model and --api-base"
