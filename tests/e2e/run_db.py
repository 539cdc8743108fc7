"""Reading a run's hgm.db from an end-to-end test, read-only (the run may still be writing it)."""

from __future__ import annotations

import sqlite3
from pathlib import Path


def rows(run_dir: Path, sql: str) -> list[tuple]:
    """Every row `sql` selects from the run's database."""
    conn = sqlite3.connect(f"file:{run_dir / 'hgm.db'}?mode=ro", uri=True, timeout=10)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def measured_pairs(run_dir: Path) -> set[tuple[int, str]]:
    """(node, task) of every measured evaluation."""
    return set(rows(run_dir, "SELECT node_id, task_id FROM evaluations WHERE utility IS NOT NULL"))
