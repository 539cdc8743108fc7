"""Keep provider secrets out of anything the gateway sends back to an agent."""

from __future__ import annotations

import os
import re
from typing import Mapping

SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|CREDENTIAL)", re.IGNORECASE)
MIN_SECRET_LENGTH = 8


def secret_values(environ: Mapping[str, str] | None = None) -> list[str]:
    """Values of environment variables whose names look like secrets."""
    env = os.environ if environ is None else environ
    return [v for k, v in env.items() if SECRET_NAME.search(k) and len(v) >= MIN_SECRET_LENGTH]


def redact(text: str, environ: Mapping[str, str] | None = None) -> str:
    """Replace every secret value (and its last-8-character tail, as providers echo) in `text`."""
    for value in secret_values(environ):
        text = text.replace(value, "[redacted]")
        text = text.replace(value[-8:], "[redacted]") if len(value) >= 16 else text
    return text
