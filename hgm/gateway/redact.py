"""Keep provider secrets out of what the gateway answers and out of what a run stores.

`Redactor` replaces two kinds of secret with `[redacted]`:
- the actual values the gateway process holds: environment variables whose names look
  like secrets (`*_API_KEY`, `*TOKEN*`, `*SECRET*`, ...), and the last 8 characters of
  long ones (providers echo key tails in their error messages);
- anything shaped like a provider key (OpenAI/Anthropic `sk-...`, AWS `AKIA...`, Google
  `AIza...`, GitHub, Slack, Hugging Face, Groq tokens, PEM private keys), whoever wrote it.

The loop applies it where text enters the run directory or the archive: agent outputs
(patch, trajectory, result, log) before they are graded or saved, diagnoses, expansion
reasons and evaluation details; gateway error messages are redacted before they are
answered or recorded.
"""

from __future__ import annotations

import os
import re
from typing import Iterable, Mapping

SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|CREDENTIAL)", re.IGNORECASE)
MIN_SECRET_LENGTH = 8
TAIL = 8  # providers echo "...abcd1234": tails of values this long or longer are hidden too
MIN_TAIL_SOURCE = 16
REDACTED = "[redacted]"
PROVIDER_KEY_PATTERNS = (
    r"\bsk-(?:proj-|ant-(?:api\d+-)?|or-v1-|svcacct-)?[A-Za-z0-9_\-]{20,}",  # OpenAI, Anthropic, OpenRouter
    r"\bAKIA[0-9A-Z]{16}\b",  # AWS access key id
    r"\bAIza[0-9A-Za-z_\-]{35}",  # Google API key
    r"\bgh[pousr]_[A-Za-z0-9]{36,}",  # GitHub tokens
    r"\bgithub_pat_[A-Za-z0-9_]{22,}",
    r"\bxox[abprs]-[A-Za-z0-9\-]{10,}",  # Slack
    r"\bhf_[A-Za-z0-9]{30,}",  # Hugging Face
    r"\bgsk_[A-Za-z0-9]{20,}",  # Groq
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----",
)


def secret_values(environ: Mapping[str, str] | None = None) -> list[str]:
    """Values of environment variables whose names look like secrets."""
    env = os.environ if environ is None else environ
    return [v for k, v in env.items() if SECRET_NAME.search(k) and len(v) >= MIN_SECRET_LENGTH]


class Redactor:
    """Replaces known secret values, their tails and provider-key shapes with `[redacted]`."""

    def __init__(self, values: Iterable[str] = (), *, patterns: bool = True) -> None:
        literals = {v for v in values if len(v) >= MIN_SECRET_LENGTH}
        literals |= {v[-TAIL:] for v in list(literals) if len(v) >= MIN_TAIL_SOURCE}
        parts = [re.escape(v) for v in sorted(literals, key=len, reverse=True)]
        if patterns:
            parts += list(PROVIDER_KEY_PATTERNS)
        self._pattern = re.compile("|".join(parts)) if parts else None
        self.n_values = len(literals)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> "Redactor":
        """A redactor for the secrets of `environ` (default: this process, i.e. the gateway's)."""
        return cls(secret_values(environ))

    def __call__(self, text: str) -> str:
        if self._pattern is None or not text:
            return text
        return self._pattern.sub(REDACTED, text)

    def data(self, data: bytes) -> bytes:
        """Redact bytes (decoded as UTF-8 with undecodable bytes kept as they are)."""
        if self._pattern is None or not data:
            return data
        text = data.decode("utf-8", errors="surrogateescape")
        redacted = self(text)
        return data if redacted == text else redacted.encode("utf-8", errors="surrogateescape")


def redact(text: str, environ: Mapping[str, str] | None = None) -> str:
    """Redact `text` for the secrets of `environ` (default: this process)."""
    return Redactor.from_environ(environ)(text)


__all__ = ["PROVIDER_KEY_PATTERNS", "REDACTED", "Redactor", "redact", "secret_values"]
