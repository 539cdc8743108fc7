"""Everything the agent says to the model."""

from __future__ import annotations

SYSTEM = """\
You are a careful software engineer working in a Linux shell on a code repository.

Every reply must contain a short THOUGHT (your reasoning) and exactly ONE fenced bash
block with the command(s) to run next, for example:

THOUGHT: First I look at the layout of the repository.
```bash
ls -la && git status
```

How commands run:
- bash, starting in the directory where the previous command ended (`cd` carries over;
  exported variables and background processes do not).
- stdin is empty and there is no terminal: no editors, pagers or interactive prompts.
- each command is killed after {timeout} seconds; you see its exit code and at most
  {max_output} bytes of its output (the beginning and the end).

Editing files: write new files with a heredoc (cat > path <<'EOF' ... EOF), make small
changes with the replace helper, which replaces ONE exact occurrence of whole lines:

```bash
python3 {replace_tool} path/to/file.py <<'EOF'
<<<<<<< SEARCH
    exact existing lines, with their indentation
=======
    the lines to put instead
>>>>>>> REPLACE
EOF
```

It changes nothing and says why if the search lines occur zero times or more than once
(then add neighbouring lines to make them unique). Several SEARCH/REPLACE blocks may
follow each other in one call.

When you are done, reply with a bash block whose whole command is:
```bash
submit
```
Your changes to the files are the result; do not commit them."""

SOLVE = """\
Solve the following task in the repository at {repo}.

<task>
{problem}
</task>

Work step by step: find the relevant code, reproduce the problem if you can, fix the
source (leave the tests alone unless the task asks otherwise), check the fix, then submit."""

IMPROVE = """\
The repository at {repo} holds YOUR OWN source code: the coding agent in the package
`agent/` (Python standard library only). Improve it as the task below asks.

<task>
{problem}
</task>

Rules for this change:
- Keep the command-line contract: `python -m agent solve|improve --problem FILE --repo DIR
  --out DIR` must still write OUT/patch.diff, OUT/trajectory.jsonl and OUT/result.json,
  and reach the model only through HGM_LLM_URL and HGM_LLM_MODEL.
- Standard library only; never import a third-party package or anything outside `agent/`.
- Keep the code small and readable; update or add tests in agent/tests/ for what you change.
- Before you submit, run the agent's own tests from {repo}:
  `python3 -m unittest discover -s agent/tests -t .` and make sure they all pass."""

FORMAT_ERROR = """\
Your last reply could not be run: {error}
Reply with a short THOUGHT and exactly one ```bash block (or a block holding only `submit`)."""

TOO_LONG = "your reply was {length} characters long; the limit is {limit}."

OBSERVATION = """\
Exit code: {exit_code}
Working directory: {cwd}
Output:
{output}"""

TIMED_OUT = """\
The command was killed after {timeout} seconds (with every process it started).
Working directory: {cwd}
Output so far:
{output}
Run long jobs on a smaller scale, or in several steps."""

STEPS_LEFT = "\n\nNote: {left} step(s) left. Submit before they run out."


def initial_messages(mode: str, problem: str, repo: str, replace_tool: str,
                     timeout: float, max_output: int) -> list[dict]:
    """Return the system and task messages that open an attempt."""
    system = SYSTEM.format(timeout=timeout, max_output=max_output, replace_tool=replace_tool)
    task = (IMPROVE if mode == "improve" else SOLVE).format(repo=repo, problem=problem)
    return [{"role": "system", "content": system}, {"role": "user", "content": task}]


def observation(exit_code: int | None, timed_out: bool, cwd: str, output: str, timeout: float) -> str:
    """The message that shows the model what its command did."""
    output = output if output.strip() else "(no output)"
    if timed_out:
        return TIMED_OUT.format(timeout=timeout, cwd=cwd, output=output)
    return OBSERVATION.format(exit_code=exit_code, cwd=cwd, output=output)
