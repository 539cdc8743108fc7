"""A GBNF grammar that forces replies into the seed agent's action format.

The format: a short thought, then exactly one ```bash fenced block, then nothing. Both parts
are bounded in characters so that a reply always finishes within `max_tokens` (a token is
at least one character), which guarantees the closing fence is produced.
"""

from __future__ import annotations

FENCE_OVERHEAD = 16  # characters of "\n\n```bash\n" + "\n```" plus slack


def action_grammar(max_tokens: int) -> str:
    """GBNF for "thought + one bash block" that fits in `max_tokens` tokens."""
    room = max(8, max_tokens - FENCE_OVERHEAD)
    thought = max(4, min(400, room * 2 // 5))
    command = max(4, min(4000, room - thought))
    return "\n".join(
        [
            'root ::= thought "\\n\\n```bash\\n" command "\\n```"',
            f"thought ::= [^`\\n] [^`]{{0,{thought - 1}}}",
            f"command ::= [^`\\n] [^`]{{0,{command - 1}}}",
        ]
    )
