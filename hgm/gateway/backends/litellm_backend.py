"""Any provider litellm knows (`openai/...`, `anthropic/...`, `ollama/...`, `hosted_vllm/...`).

litellm is imported on first use only: the import takes seconds. Provider keys are read by
litellm from this process's environment; they never appear in replies (errors are redacted).
"""

from __future__ import annotations

import os
from typing import Any, Sequence

from hgm.gateway.types import (
    BackendError,
    Completion,
    CompletionParams,
    Message,
    TransientBackendError,
)

TRANSIENT_STATUSES = frozenset({408, 409, 425, 429, 500, 502, 503, 504, 529})


def import_litellm() -> Any:
    """Import litellm offline (local price map, no telemetry)."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    litellm.telemetry = False
    litellm.suppress_debug_info = True  # no "Give Feedback" banners on stdout
    litellm.drop_params = True  # e.g. `seed` for providers without it
    return litellm


class LitellmBackend:
    """Calls `litellm.completion` (no retries inside: the gateway retries)."""

    def __init__(self, model: str, api_base: str | None = None, timeout: float = 300.0) -> None:
        self.name = model
        self._model = model
        self._api_base = api_base
        self._timeout = timeout
        self._litellm = import_litellm()
        try:
            self.max_output_tokens: int | None = int(self._litellm.get_max_tokens(model)) or None
        except Exception:  # noqa: BLE001 - a model litellm does not know
            self.max_output_tokens = None

    def price(self, prompt_tokens: int, completion_tokens: int) -> float | None:
        """Dollars of a call of that size from litellm's price list (None: price unknown)."""
        try:
            prompt, completion = self._litellm.cost_per_token(
                model=self._model, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)
        except Exception:  # noqa: BLE001 - not in the price list: such calls are recorded at $0
            return None
        return float(prompt) + float(completion)

    def complete(self, messages: Sequence[Message], params: CompletionParams) -> Completion:
        litellm = self._litellm
        kwargs: dict[str, Any] = {
            "model": self._model,
            "messages": [m.as_dict() for m in messages],
            "timeout": self._timeout,
            "num_retries": 0,
        }
        if self._api_base:
            kwargs["api_base"] = self._api_base
            if not os.environ.get(f"{self._model.split('/')[0].upper()}_API_KEY"):
                kwargs["api_key"] = "none"  # self-hosted servers (vLLM, llama.cpp) often need no key
        for name in ("max_tokens", "temperature", "top_p", "seed"):
            value = getattr(params, name)
            if value is not None:
                kwargs[name] = value
        if params.stop:
            kwargs["stop"] = list(params.stop)
        if params.response_format is not None:  # JSON mode is the common ground of providers
            kwargs["response_format"] = {"type": "json_object"}
        try:
            response = litellm.completion(**kwargs)
        except Exception as exc:  # noqa: BLE001 - classified below
            raise classify_error(exc) from exc
        choice = response.choices[0]
        usage = getattr(response, "usage", None)
        return Completion(
            text=choice.message.content or "",
            prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
            completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
            cost=self._cost(response),
            finish_reason=choice.finish_reason or "stop",
        )

    def _cost(self, response: Any) -> float:
        try:
            return float(self._litellm.completion_cost(completion_response=response) or 0.0)
        except Exception:  # noqa: BLE001 - a model without a known price costs 0
            return 0.0


def classify_error(exc: Exception) -> BackendError:
    """Map a provider exception to a retryable or final gateway error."""
    status = getattr(exc, "status_code", None)
    name = exc.__class__.__name__
    message = f"{name}: {getattr(exc, 'message', None) or exc}"
    if "credentials" in message.lower() or "api_key" in message or isinstance(status, int) and status in (401, 403):
        return BackendError(message, status=401, kind="authentication_error")  # retrying cannot help
    transient_names = ("Timeout", "APIConnectionError", "RateLimitError", "ServiceUnavailable", "InternalServerError")
    if isinstance(status, int) and status in TRANSIENT_STATUSES or any(n in name for n in transient_names):
        code = status if isinstance(status, int) else (504 if "Timeout" in name else 502)
        return TransientBackendError(message, status=code, kind="provider_error")
    code = status if isinstance(status, int) and 400 <= status < 600 else 502
    return BackendError(message, status=code, kind="provider_error")
