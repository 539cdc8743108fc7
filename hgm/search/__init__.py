"""The search's neutral vocabulary: the tree as policies see it, actions, final choice.

`state` (the in-memory tree with own and clade measures, and its read-only `SearchView`),
`actions` (Evaluate / Expand / Wait and the `Policy` interface), `selection` (final-choice
rules) and `report` (the same scores read from an archive: shipped node, per-node rows,
run summary). Policies, the loop, the simulator, the CLI and the TUI all build on it; it
imports nothing of hgm's other subpackages.
"""
