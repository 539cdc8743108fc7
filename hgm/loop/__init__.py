"""Search loop: in-memory search state, the execution-agnostic scheduler core, final choice.

`state` (tree + measures), `scheduler` (budget, pending work, thread-safe dispatch), and
`selection` (final-choice rules) are pure; executors that run real sandboxes build on them.
"""
