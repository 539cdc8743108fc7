"""`python -m agent solve|improve --problem FILE --repo DIR --out DIR`: one attempt, three files."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import tempfile
import time
import traceback

from .llm import LLMClient
from .loop import run
from .prompts import initial_messages
from .shell import Shell, command_env

REPLACE_TOOL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tools", "replace.py")
EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"  # the start of a repository without commits
NOT_IN_PATCH = (":(exclude,glob)**/__pycache__/**", ":(exclude,glob)**/*.pyc")
LIMITS = (  # flag, type, default, what it limits; all must be positive
    ("--max-steps", int, 30, "model calls in all"),
    ("--command-timeout", float, 60.0, "seconds per command"),
    ("--max-output", int, 10_000, "bytes of each command's output shown (head + tail)"),
    ("--max-tokens", int, 200_000, "prompt + completion tokens in all"),
    ("--llm-timeout", float, 600.0, "seconds per model call"),
    ("--llm-attempts", int, 3, "failed model calls in a row that end the attempt"),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m agent", description="A small bash-only coding agent.")
    commands = parser.add_subparsers(dest="mode", required=True, metavar="{solve,improve}")
    for mode, text in (("solve", "fix a task in a git repository"),
                       ("improve", "change the agent's own source tree (DIR contains agent/)")):
        sub = commands.add_parser(mode, help=text, description=text)
        sub.add_argument("--problem", required=True, metavar="FILE", help="the task, plain text")
        sub.add_argument("--repo", required=True, metavar="DIR", help="git work tree to change")
        sub.add_argument("--out", required=True, metavar="DIR", help="where the output files go")
        sub.add_argument("--guidance", metavar="FILE", help="strategy notes to add to the first prompt")
        for flag, kind, default, meaning in LIMITS:
            sub.add_argument(flag, type=kind, default=default, metavar="N", help=f"{meaning} (default {default})")
    return parser


class GitError(RuntimeError):
    pass


def git(repo: str, *args: str, index: str | None = None) -> bytes:
    env = dict(os.environ, GIT_INDEX_FILE=index) if index else None
    command = ["git", "-c", "safe.directory=*", "-c", "core.quotepath=off", *args]
    try:
        done = subprocess.run(command, cwd=repo, env=env, capture_output=True, stdin=subprocess.DEVNULL)
    except OSError as err:
        raise GitError(f"cannot run git: {err}") from err
    if done.returncode != 0:
        raise GitError(f"git {' '.join(args[:2])} failed: {done.stderr.decode(errors='replace').strip()}")
    return done.stdout


def diff_since(top: str, start: str, exclude: tuple[str, ...]) -> bytes:
    """`git diff --binary` from `start` to the work tree with untracked files, built in a throwaway index."""
    with tempfile.TemporaryDirectory(prefix="agent-diff-") as tmp:
        index = os.path.join(tmp, "index")
        git(top, "read-tree", start, index=index)
        git(top, "add", "-A", "--", ".", *NOT_IN_PATCH, *(f":(exclude,literal){p}" for p in exclude), index=index)
        tree = git(top, "write-tree", index=index).decode().strip()
    return git(top, "diff", "--binary", "--no-color", "--no-ext-diff", "--no-renames",
               "--src-prefix=a/", "--dst-prefix=b/", start, tree)


def read_file(parser: argparse.ArgumentParser, flag: str, path: str) -> str:
    if not os.path.isfile(path):
        parser.error(f"{flag} {path}: no such file")
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read()


def check(parser: argparse.ArgumentParser, args: argparse.Namespace) -> tuple[str, str]:
    """Validate the arguments (exit 2 with one line naming the problem); return (task, guidance)."""
    problem = read_file(parser, "--problem", args.problem)
    if not problem.strip():
        parser.error(f"--problem {args.problem}: the file is empty")
    guidance = read_file(parser, "--guidance", args.guidance) if args.guidance else ""
    try:
        git(args.repo, "rev-parse", "--show-toplevel")
    except GitError:
        parser.error(f"--repo {args.repo}: no such directory, or not a git work tree (run `git init` and commit first)")
    if args.mode == "improve" and not os.path.isfile(os.path.join(args.repo, "agent", "__main__.py")):
        parser.error(f"--repo {args.repo}: improve needs the folder that contains agent/")
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        parser.error(f"--out {args.out}: exists and is not a directory")
    for flag, *_ in LIMITS:
        if getattr(args, flag[2:].replace("-", "_")) <= 0:
            parser.error(f"{flag} must be positive")
    return problem, guidance


def run_attempt(args: argparse.Namespace, llm: LLMClient, messages: list[dict], environ: dict[str, str]) -> bool:
    """Run the loop and write OUT/{trajectory.jsonl,patch.diff,result.json}; True if the agent crashed."""
    started = time.monotonic()
    top = git(args.repo, "rev-parse", "--show-toplevel").decode(errors="surrogateescape").strip()
    try:
        start = git(top, "rev-parse", "--verify", "HEAD^{commit}").decode().strip()
    except GitError:
        start = EMPTY_TREE
    result = {"exit_reason": "", "steps": 0, "tokens": 0, "prompt_tokens": 0, "completion_tokens": 0,
              "detail": "", "mode": args.mode, "model": llm.model, "start": start}
    shell = Shell(args.repo, args.command_timeout, args.max_output, command_env(environ))
    crashed = False
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "trajectory.jsonl"), "w", encoding="utf-8") as trajectory:
        try:
            run(messages, llm, shell, args, lambda entry: print(json.dumps(entry), file=trajectory, flush=True), result)
        except (Exception, KeyboardInterrupt) as err:  # a bug in the agent, SIGTERM or SIGINT
            crashed = True
            detail = "interrupted by a signal" if isinstance(err, KeyboardInterrupt) else traceback.format_exc()
            result.update(exit_reason="error", detail=detail)
        finally:
            shell.close()
    result["duration"] = round(time.monotonic() - started, 3)
    os.makedirs(args.out, exist_ok=True)  # a command may have removed it
    out = os.path.relpath(os.path.realpath(args.out), os.path.realpath(top))
    try:
        patch = diff_since(top, start, () if out.startswith("..") or out == "." else (out,))
    except GitError as err:
        patch, result["patch_error"] = b"", str(err)
    with open(os.path.join(args.out, "patch.diff"), "wb") as f:
        f.write(patch)
    result["patch_bytes"] = len(patch)
    with open(os.path.join(args.out, "result.json"), "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2)
    print(json.dumps({k: result[k] for k in ("exit_reason", "steps", "tokens", "patch_bytes")}))
    return crashed


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    problem, guidance = check(parser, args)
    environ = dict(os.environ)  # passed on to commands without secrets; the agent reads only HGM_*
    try:
        llm = LLMClient.from_env(environ, timeout=args.llm_timeout)
    except ValueError as err:
        parser.error(str(err))
    messages = initial_messages(args.mode, problem, os.path.abspath(args.repo), REPLACE_TOOL,
                                args.command_timeout, args.max_output, guidance)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, signal.default_int_handler)  # raises KeyboardInterrupt
    return 1 if run_attempt(args, llm, messages, environ) else 0
