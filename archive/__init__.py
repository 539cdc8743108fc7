"""The run archive: one directory per run, holding hgm.db (SQLite) and agents.git.

Public API:
    Run.create(run_dir, config, seed_agent_dir) / Run.open(run_dir, writable=False)
    EvalRecord, ExpansionRecord   what the search loop records (AttemptRecord: an evaluation's attempts)
    AdmissionRecord               the gate's decision on a child (a ledger row)
    Tree, Node                    read-only in-memory snapshot (Run.tree())
    ArchiveError and subclasses   one-line, user-facing errors
    wilson_interval               interval of a 0/1 success rate (archive.stats)
"""

from archive.errors import (
    ArchiveError,
    CorruptDatabase,
    DiskFull,
    DuplicateEvaluation,
    GitStoreError,
    LostData,
    MissingGitStore,
    NewerSchema,
    NotARun,
    ReadOnlyRun,
    RunExists,
    RunLocked,
    UnknownNode,
)
from archive.records import AdmissionRecord, AttemptRecord, EvalRecord, ExpansionRecord
from archive.run import EXPORT_FORMATS, Run, RunInfo, validate
from archive.schema import SCHEMA_VERSION
from archive.tree import Node, Tree

__all__ = [
    "AdmissionRecord",
    "ArchiveError",
    "AttemptRecord",
    "CorruptDatabase",
    "DiskFull",
    "DuplicateEvaluation",
    "EXPORT_FORMATS",
    "EvalRecord",
    "ExpansionRecord",
    "GitStoreError",
    "LostData",
    "MissingGitStore",
    "NewerSchema",
    "Node",
    "NotARun",
    "ReadOnlyRun",
    "Run",
    "RunExists",
    "RunInfo",
    "RunLocked",
    "SCHEMA_VERSION",
    "Tree",
    "UnknownNode",
    "validate",
]
