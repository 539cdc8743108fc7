"""Read the one action out of a model reply.

A valid reply holds a short thought and exactly one fenced ```bash block. A block whose
whole command is `submit` ends the attempt. Anything else is a format error whose text
tells the model what was wrong.
"""

from __future__ import annotations

from dataclasses import dataclass

SHELL_LANGUAGES = ("bash", "sh", "shell")
SUBMIT = "submit"


@dataclass(frozen=True)
class Action:
    """A parsed action: a shell command, or the request to submit."""

    command: str

    @property
    def is_submit(self) -> bool:
        return self.command.strip() == SUBMIT


class FormatError(ValueError):
    """The reply did not hold exactly one usable bash block."""


def fenced_blocks(reply: str) -> list[tuple[str, str]]:
    """Return (language, body) of every fenced block; raise FormatError on an unclosed fence."""
    blocks: list[tuple[str, str]] = []
    language: str | None = None
    body: list[str] = []
    for line in reply.splitlines():
        stripped = line.strip()
        if language is None:
            if stripped.startswith("```"):
                language = stripped[3:].strip().lower()
                body = []
        elif stripped == "```":
            blocks.append((language, "\n".join(body)))
            language = None
        else:
            body.append(line)
    if language is not None:
        raise FormatError("Your reply has an unclosed ``` fence (unbalanced fences).")
    return blocks


def parse_action(reply: str) -> Action:
    """Return the single bash action of `reply` or raise FormatError saying what is wrong."""
    if not reply.strip():
        raise FormatError("Your reply was empty.")
    blocks = fenced_blocks(reply)
    commands = [body for language, body in blocks if language in SHELL_LANGUAGES]
    if not commands:
        others = sorted({language or "(no language)" for language, _ in blocks})
        if others:
            raise FormatError(
                f"Unknown action: found fenced block(s) of type {', '.join(others)}, "
                "but only ```bash blocks are executed."
            )
        raise FormatError("No action found: your reply has no ```bash block.")
    if len(commands) > 1:
        raise FormatError(
            f"Found {len(commands)} bash blocks; put exactly one in each reply "
            "(join several commands with && inside one block)."
        )
    if not commands[0].strip():
        raise FormatError("Your bash block is empty.")
    return Action(commands[0])
