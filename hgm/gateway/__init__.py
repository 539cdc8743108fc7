"""The LLM gateway: the one door through which every model call of a run passes.

An OpenAI-compatible chat-completions server on a unix socket (mounted into sandboxes) and
optionally loopback TCP. It picks a backend by model spec, records every call, enforces
budgets and retries provider errors; provider keys never leave its process.

    with start_gateway(GatewayConfig(model="scripted:replies.json"), JsonlRecorder(p)) as gw:
        subprocess.run([...], env=agent_env(gw, {"run": "r1", "node": "0", "task": "t1"}))
"""

from hgm.gateway.budget import BudgetExceeded, BudgetLedger
from hgm.gateway.config import BudgetLimit, GatewayConfig
from hgm.gateway.env import agent_env
from hgm.gateway.records import CallRecord, JsonlRecorder, Recorder, read_records
from hgm.gateway.server import Gateway, start_gateway
from hgm.gateway.types import Backend, BackendError, Completion, CompletionParams, Message, TransientBackendError

__all__ = [
    "Backend",
    "BackendError",
    "BudgetExceeded",
    "BudgetLedger",
    "BudgetLimit",
    "CallRecord",
    "Completion",
    "CompletionParams",
    "Gateway",
    "GatewayConfig",
    "JsonlRecorder",
    "Message",
    "Recorder",
    "TransientBackendError",
    "agent_env",
    "read_records",
    "start_gateway",
]
