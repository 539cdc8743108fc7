"""Running agent versions in sandboxes: one `run_agent`, one `evaluate`.

`run_agent(session, ...)` runs `python -m agent solve|improve` in an open sandbox and
collects its output files; `evaluate(setup, ...)` is the one evaluation path (agent run,
then grading in a fresh sandbox, then an `EvalRecord`) that `hgm run` and `hgm eval` share.
Self-improvement (`hgm.evolve`) builds on `run_agent` too.
"""
