"""Read the one action out of a model reply: exactly one fenced ```bash block."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Action:
    command: str

    @property
    def is_submit(self) -> bool:
        return self.command.strip() == "submit"


class FormatError(ValueError):
    """The reply did not hold exactly one usable bash block; the message tells the model why."""


def fenced_blocks(reply: str) -> list[tuple[str, str]]:
    """Return (language, body) of every fenced block; a block ends at a line that is just ```."""
    blocks, language, body = [], None, []
    for line in reply.splitlines():
        if language is None and line.strip().startswith("```"):
            language, body = line.strip()[3:].strip().lower(), []
        elif language is not None and line.strip() == "```":
            blocks.append((language, "\n".join(body)))
            language = None
        elif language is not None:
            body.append(line)
    if language is not None:
        raise FormatError("Your reply has an unclosed ``` fence (unbalanced fences).")
    return blocks


def parse_action(reply: str) -> Action:
    """Return the single bash action of `reply` or raise FormatError."""
    if not reply.strip():
        raise FormatError("Your reply was empty.")
    blocks = fenced_blocks(reply)
    commands = [body for language, body in blocks if language in ("bash", "sh", "shell")]
    if not commands and blocks:
        others = ", ".join(sorted({language or "(no language)" for language, _ in blocks}))
        raise FormatError(f"Unknown action: found fenced block(s) of type {others}, "
                          "but only ```bash blocks are executed.")
    if not commands:
        raise FormatError("No action found: your reply has no ```bash block.")
    if len(commands) > 1:
        raise FormatError(f"Found {len(commands)} bash blocks; put exactly one in each reply "
                          "(join several commands with && inside one block).")
    if not commands[0].strip():
        raise FormatError("Your bash block is empty.")
    return Action(commands[0])
