"""Errors raised when a run directory cannot be used.

Every message is one line that names the problem and what to do about it, so the CLI
can print it as is and exit with code 2.
"""

from __future__ import annotations


class ArchiveError(Exception):
    """Base class of every archive error; `str(err)` is a one-line, user-facing message."""


class NotARun(ArchiveError):
    """The directory is not an hgm run (missing, or no hgm.db in it)."""


class CorruptDatabase(ArchiveError):
    """hgm.db exists but SQLite cannot read it, or it lacks the hgm tables."""


class NewerSchema(ArchiveError):
    """hgm.db was written by a newer hgm than this one."""


class MissingGitStore(ArchiveError):
    """The run has a database but its agents.git repository is missing or broken."""


class GitStoreError(ArchiveError):
    """A git command on agents.git failed (damaged store, unreadable agent files, ...)."""


class RunLocked(ArchiveError):
    """Another live process has the run open for writing."""


class RunExists(ArchiveError):
    """A run cannot be created where a non-empty directory already exists."""


class ReadOnlyRun(ArchiveError):
    """A write was attempted on a run opened read-only."""


class DuplicateEvaluation(ArchiveError):
    """A measured (0/1) evaluation of this node on this task is already recorded."""


class UnknownNode(ArchiveError):
    """A node id that the run does not contain."""


class DiskFull(ArchiveError):
    """The disk holding the run is full; nothing half-written was kept. Free space, then resume."""


class LostData(ArchiveError):
    """hgm.db holds less than the run wrote (e.g. its write-ahead log hgm.db-wal was deleted)."""
