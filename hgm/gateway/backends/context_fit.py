"""Fit a conversation into a small context window by dropping its middle."""

from __future__ import annotations

from typing import Callable, Sequence

from hgm.gateway.types import Message

PER_MESSAGE_OVERHEAD = 8  # template tokens around each message


def fit_messages(
    messages: Sequence[Message], count_tokens: Callable[[str], int], budget: int
) -> list[Message]:
    """Return `messages` shortened to at most about `budget` tokens.

    Keeps the leading system message(s) and the first user message (the task), then as many
    of the most recent messages as fit, with a note where messages were dropped. If the
    kept head alone is too long, the longest kept messages are cut in their middle.
    """
    costs = [count_tokens(m.content) + PER_MESSAGE_OVERHEAD for m in messages]
    if sum(costs) <= budget:
        return list(messages)
    head_end = 0
    while head_end < len(messages) and messages[head_end].role in ("system", "developer"):
        head_end += 1
    if head_end < len(messages) and messages[head_end].role == "user":
        head_end += 1
    head_end = min(head_end, len(messages) - 1)  # the last message is always kept as tail
    head, head_cost = list(messages[:head_end]), sum(costs[:head_end])
    tail: list[Message] = []
    tail_cost = 0
    note_cost = 24
    for index in range(len(messages) - 1, head_end - 1, -1):
        if tail and head_cost + tail_cost + costs[index] + note_cost > budget:
            break
        tail.insert(0, messages[index])
        tail_cost += costs[index]
    dropped = len(messages) - len(head) - len(tail)
    note = (
        [Message("user", f"[{dropped} earlier messages were omitted to fit the context window]")]
        if dropped
        else []
    )
    fitted = head + note + tail
    return _cut_longest(fitted, count_tokens, budget)


def _cut_longest(messages: list[Message], count_tokens: Callable[[str], int], budget: int) -> list[Message]:
    """Cut the middle of the longest messages until the total fits."""
    messages = list(messages)
    for _ in range(len(messages) * 8):
        costs = [count_tokens(m.content) + PER_MESSAGE_OVERHEAD for m in messages]
        excess = sum(costs) - budget
        if excess <= 0:
            break
        longest = max(range(len(messages)), key=costs.__getitem__)
        content = messages[longest].content
        # Shrink in proportion to the token excess (characters per token vary by text).
        ratio = max(0.0, (costs[longest] - excess - 16) / costs[longest]) * 0.95
        half = int(len(content) * ratio) // 2
        marker = "\n[... cut to fit the context window ...]\n"
        cut = content[:half] + marker + content[len(content) - half :] if half else marker
        messages[longest] = Message(messages[longest].role, cut)
    return messages
