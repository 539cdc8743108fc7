"""Moved to `hgm.gateway.chat` (hgm's own model calls are no longer only the diagnosis)."""

from hgm.gateway.chat import ChatReply, LLMCallError, chat

__all__ = ["ChatReply", "LLMCallError", "chat"]
