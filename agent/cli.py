"""Command line: `python -m agent solve|improve --problem FILE --repo DIR --out DIR`."""

from __future__ import annotations

import argparse
import json
import os
import signal

from . import repo
from .attempt import interrupt, run_attempt
from .llm import LLMClient
from .loop import Limits


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m agent", description="A small bash-only coding agent.")
    commands = parser.add_subparsers(dest="mode", required=True, metavar="{solve,improve}")
    defaults = Limits()
    for mode, text in (("solve", "fix a task in a git repository"),
                       ("improve", "change the agent's own source tree (DIR contains agent/)")):
        sub = commands.add_parser(mode, help=text, description=text)
        sub.add_argument("--problem", required=True, metavar="FILE",
                         help="task text (plain text, or JSON with a problem_statement field)")
        sub.add_argument("--repo", required=True, metavar="DIR", help="git work tree to change")
        sub.add_argument("--out", required=True, metavar="DIR", help="where the output files go")
        sub.add_argument("--max-steps", type=int, default=defaults.max_steps)
        sub.add_argument("--command-timeout", type=float, default=defaults.command_timeout, metavar="SECONDS")
        sub.add_argument("--max-output", type=int, default=defaults.max_output, metavar="BYTES",
                         help="bytes of command output the model sees (head + tail)")
        sub.add_argument("--max-tokens", type=int, default=defaults.max_tokens,
                         help="total tokens (prompt + completion) for the attempt")
        sub.add_argument("--llm-timeout", type=float, default=600.0, metavar="SECONDS",
                         help="timeout of one model call")
        sub.add_argument("--llm-attempts", type=int, default=3,
                         help="tries per model call on transient errors (5xx, connection)")
    return parser


def read_problem(path: str) -> str:
    """Return the task text; a JSON object's problem_statement is used if present."""
    with open(path, encoding="utf-8", errors="replace") as f:
        text = f.read()
    try:
        data = json.loads(text)
    except ValueError:
        return text
    if isinstance(data, dict) and isinstance(data.get("problem_statement"), str):
        return data["problem_statement"]
    return text


def check(parser: argparse.ArgumentParser, args: argparse.Namespace) -> str:
    """Validate the arguments (exit 2 with one line naming the problem); return the task text."""
    if not os.path.isfile(args.problem):
        parser.error(f"--problem {args.problem}: no such file")
    problem = read_problem(args.problem)
    if not problem.strip():
        parser.error(f"--problem {args.problem}: the file is empty")
    if not os.path.isdir(args.repo):
        parser.error(f"--repo {args.repo}: no such directory")
    try:
        repo.toplevel(args.repo)
    except repo.GitError:
        parser.error(f"--repo {args.repo}: not a git work tree (run `git init` and commit first)")
    if args.mode == "improve" and not os.path.isfile(os.path.join(args.repo, "agent", "__main__.py")):
        parser.error(f"--repo {args.repo}: improve needs the folder that contains agent/")
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        parser.error(f"--out {args.out}: exists and is not a directory")
    for name in ("max_steps", "max_output", "max_tokens", "command_timeout", "llm_timeout", "llm_attempts"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be positive")
    return problem


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    problem = check(parser, args)
    environ = dict(os.environ)  # passed on to commands without secrets; the agent reads only HGM_*
    try:
        llm = LLMClient.from_env(environ, timeout=args.llm_timeout, attempts=args.llm_attempts)
    except ValueError as err:
        parser.error(str(err))
    limits = Limits(max_steps=args.max_steps, command_timeout=args.command_timeout,
                    max_output=args.max_output, max_tokens=args.max_tokens)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, interrupt)
    result, crashed = run_attempt(args.mode, problem, args.repo, args.out, limits, llm, environ)
    print(json.dumps({k: result[k] for k in ("exit_reason", "steps", "tokens", "patch_bytes")}))
    return 1 if crashed else 0
