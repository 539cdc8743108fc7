"""Model backends of the gateway, chosen by a model spec string."""

from __future__ import annotations

from pathlib import Path

from hgm.gateway.config import GatewayConfig
from hgm.gateway.types import Backend

LOCAL_PREFIX = "local/"
SCRIPTED_PREFIX = "scripted:"
REPLAY_PREFIX = "replay:"


def is_local(spec: str) -> bool:
    return spec.startswith(LOCAL_PREFIX)


def make_backend(spec: str, config: GatewayConfig) -> Backend:
    """Build the backend for `spec`; raise ValueError with a clear message for a bad spec."""
    if spec.startswith(SCRIPTED_PREFIX):
        from hgm.gateway.backends.scripted import ScriptedBackend

        return ScriptedBackend(Path(spec[len(SCRIPTED_PREFIX) :]))
    if spec.startswith(REPLAY_PREFIX):
        from hgm.gateway.backends.replay import ReplayBackend

        return ReplayBackend(Path(spec[len(REPLAY_PREFIX) :]))
    if is_local(spec):
        from hgm.gateway.backends.local_llama import LocalLlamaBackend, resolve_local_model

        grammar = True if config.grammar is None else config.grammar
        return LocalLlamaBackend(
            resolve_local_model(spec[len(LOCAL_PREFIX) :]),
            n_ctx=config.n_ctx,
            grammar=grammar,
            n_threads=config.n_threads,
        )
    if "/" not in spec.strip("/"):
        raise ValueError(
            f"unknown model {spec!r}: use provider/model (e.g. openai/gpt-4o-mini), "
            "local/smollm2, local/PATH.gguf, scripted:FILE or replay:DIR"
        )
    from hgm.gateway.backends.litellm_backend import LitellmBackend

    return LitellmBackend(spec, api_base=config.api_base, timeout=config.request_timeout)
