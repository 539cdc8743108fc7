"""Task suites and honest grading (see docs/evaluators.md).

    from evaluators.suite import load_suite
    from evaluators.grading import grade
    suite = load_suite("mini")              # or a task-repo dir, Polyglot checkout, SWE-bench file
    task = suite.tasks()[0]
    result = grade(patch, task, suite, backend)   # fresh sandbox; result.outcome: Outcome

Modules: `task` (Task model), `suite` (Suite interface, load_suite), `taskrepo`,
`swebench_suite`, `polyglot` (suite kinds), `repos` (pristine snapshots), `grading`,
`outcomes`, `validate`, `environments` (offline images with Python packages).
Imports `sandbox` only; swebench and docker are imported lazily.
"""
