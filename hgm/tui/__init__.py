"""`hgm tui`: a terminal browser for a run's tree of agent versions (Textual).

Modules:
    data        the read-only data layer: every archive query and scoring import
    app         the Textual application (run picker or one run) and its command palette
    run_screen  the main view: tree, Summary / Diff / Evaluations / Model calls tabs
    tree_view   the lazily loaded tree widget
    tables      paged tables of evaluations and model calls
    panes       the Summary and Diff tabs
    trajectory  an evaluation's steps, patch and grading report
    picker      the list of runs under ./runs
    dialogs     pick a version to diff against, export, help
    replay      stepping through a run's timeline
    workers     background reads whose failures are notices, not crashes
    labels, fmt tree rows, header, short numbers
"""
