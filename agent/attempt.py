"""One attempt from start to finish: prompts, loop, and the three output files."""

from __future__ import annotations

import json
import os
import time
import traceback

from . import loop, prompts, repo
from .llm import LLMClient
from .shell import Shell, command_env

REPLACE_TOOL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tools", "replace.py")


class Interrupted(Exception):
    """SIGTERM or SIGINT arrived: stop the command, still write the output files."""


def interrupt(signum: int, frame: object) -> None:
    """Signal handler (installed by the CLI) that unwinds the loop, killing the running command."""
    raise Interrupted(f"interrupted by signal {signum}")


def excluded_paths(top: str, out: str) -> tuple[str, ...]:
    """The output folder, if it lies inside the repository, must not end up in the patch."""
    relative = os.path.relpath(os.path.realpath(out), os.path.realpath(top))
    return () if relative.startswith("..") or relative == "." else (relative,)


def run_attempt(mode: str, problem: str, repo_dir: str, out: str, limits: loop.Limits,
                llm: LLMClient, environ: dict[str, str]) -> tuple[dict, bool]:
    """Run one attempt and write OUT/{trajectory.jsonl,patch.diff,result.json}.

    Returns (result, crashed); crashed is True only when the agent itself raised.
    """
    started = time.monotonic()
    os.makedirs(out, exist_ok=True)
    top = repo.toplevel(repo_dir)
    start = repo.start_point(top)
    messages = prompts.initial_messages(mode, problem, os.path.abspath(repo_dir), REPLACE_TOOL,
                                        limits.command_timeout, limits.max_output)
    shell = Shell(repo_dir, limits.command_timeout, limits.max_output, command_env(environ))
    crashed = False
    with open(os.path.join(out, "trajectory.jsonl"), "w", encoding="utf-8") as trajectory:

        def record(entry: dict) -> None:
            trajectory.write(json.dumps(entry) + "\n")
            trajectory.flush()

        outcome = loop.Outcome("error")
        try:
            loop.run(messages, llm, shell, limits, record, outcome)
        except Interrupted as err:
            crashed, outcome.exit_reason, outcome.detail = True, "error", str(err)
        except Exception:  # noqa: BLE001 - a bug in the agent: still leave a full record
            crashed, outcome.exit_reason, outcome.detail = True, "error", traceback.format_exc()
        finally:
            shell.close()
    result = {"exit_reason": outcome.exit_reason, "steps": outcome.steps, "tokens": outcome.tokens,
              "prompt_tokens": outcome.prompt_tokens, "completion_tokens": outcome.completion_tokens,
              "duration": round(time.monotonic() - started, 3), "detail": outcome.detail,
              "mode": mode, "model": llm.model, "start": start}
    os.makedirs(out, exist_ok=True)  # a command may have removed it
    try:
        patch = repo.diff_since(top, start, excluded_paths(top, out))
    except repo.GitError as err:
        patch, result["patch_error"] = b"", str(err)
    with open(os.path.join(out, "patch.diff"), "wb") as f:
        f.write(patch)
    result["patch_bytes"] = len(patch)
    with open(os.path.join(out, "result.json"), "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2)
    return result, crashed
