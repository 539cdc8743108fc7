"""The TUI's read-only window on a run: plain dataclasses built from the archive.

Every archive query of the TUI and every use of hgm's scoring code (means, intervals,
clade estimates, the node a run ships) lives in this module, so the widgets only see
plain values and the scoring imports can be re-pointed in one place.

The run is opened read-only (`Run.open(path)`): SQLite in WAL mode lets this reader
poll while `hgm run` writes, without blocking or slowing the writer. The only thing
the TUI ever writes is an export, through `Run.export`, the code behind `hgm export`.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from archive import ArchiveError, Run, Tree
from archive.stats import wilson_interval
from hgm.search.report import best_in_tree, final_choice_settings, tree_scores
from hgm.tui import fmt

# Model-call purposes the loop tags its work with (hgm.loop.jobs): used to see work in flight.
SOLVE_PURPOSES = frozenset({"solve"})
EXPAND_PURPOSES = frozenset({"diagnose", "improve"})
MAX_TEXT = 200_000  # characters read from one artifact file (they are written by agents: untrusted)
MAX_STEP_TEXT = 4_000  # characters shown per action / observation in the trajectory viewer


# ----------------------------------------------------------------------------- tree


@dataclass(frozen=True, slots=True)
class InFlight:
    """Work on a version that has started and not finished (seen from its model calls)."""

    evaluations: int = 0
    expanding: bool = False

    def __bool__(self) -> bool:
        return bool(self.evaluations or self.expanding)


@dataclass(frozen=True, slots=True)
class NodeRow:
    """One agent version as the tree shows it."""

    id: int
    parent_id: int | None
    children: tuple[int, ...]
    created: float
    status: str
    operator: str
    evals: int  # measured evaluations (0/1)
    successes: int
    low: float | None  # 95% Wilson interval of the own mean
    high: float | None
    clade_evals: int
    clade_successes: int
    score: float | None  # under the run's final-choice rule
    failed_expansions: int = 0
    in_flight: InFlight = InFlight()
    shipped: bool = False

    @property
    def mean(self) -> float | None:
        return self.successes / self.evals if self.evals else None

    @property
    def clade_mean(self) -> float | None:
        """The clade estimate: resolved rate pooled over the version and all its descendants."""
        return self.clade_successes / self.clade_evals if self.clade_evals else None


@dataclass(frozen=True, slots=True)
class RunHeader:
    """What the header bar shows about the whole run."""

    name: str
    path: str
    status: str
    live: bool
    nodes: int
    evaluations: int
    budget_evals: int | None
    cost_usd: float
    budget_usd: float | None
    tokens: int
    shipped: int | None
    shipped_mean: float | None
    rule: str
    note: str = ""  # e.g. the replay position


@dataclass(frozen=True)
class TreeSnapshot:
    """The whole tree at one moment: rows by id (cheap: counts only, no evaluation rows)."""

    header: RunHeader
    nodes: dict[int, NodeRow]
    root_id: int | None

    def children(self, node_id: int, by_clade: bool = False) -> list[int]:
        """Child ids in id order, or best clade estimate first."""
        kids = list(self.nodes[node_id].children) if node_id in self.nodes else []
        if by_clade:
            kids.sort(key=lambda i: (-(self.nodes[i].clade_mean or -1.0), -self.nodes[i].clade_evals, i))
        return kids

    def lineage(self, node_id: int) -> list[int]:
        """Ids from the root down to `node_id`."""
        path: list[int] = []
        current: int | None = node_id
        while current is not None and current in self.nodes and current not in path:
            path.append(current)
            current = self.nodes[current].parent_id
        return path[::-1]

    def with_ancestors(self, ids: Iterable[int]) -> set[int]:
        """`ids` and every ancestor of them (what a filtered tree must show)."""
        keep: set[int] = set()
        for node_id in ids:
            while node_id is not None and node_id in self.nodes and node_id not in keep:
                keep.add(node_id)
                node_id = self.nodes[node_id].parent_id
        return keep


def snapshot_from_tree(
    tree: Tree,
    config: dict[str, Any],
    header: RunHeader,
    in_flight: dict[int, InFlight] | None = None,
) -> TreeSnapshot:
    """Rows with own and clade statistics and the shipped node, from an archive Tree."""
    rule, quantile = final_choice_settings(config)
    scores = tree_scores(tree, rule, quantile)
    clades = tree.clade_counts()
    best = best_in_tree(tree, rule, quantile, scores)
    shipped = best["node"] if best else None
    failed = Counter(f.parent_id for f in tree.failed_expansions if f.status == "failed")
    in_flight = in_flight or {}
    rows: dict[int, NodeRow] = {}
    for node in tree.nodes.values():
        n, s = len(node.evals), node.successes
        low, high = wilson_interval(s, n) if n else (None, None)
        cs, cf = clades.get(node.id, (s, n - s))
        rows[node.id] = NodeRow(
            id=node.id,
            parent_id=node.parent_id,
            children=tuple(node.children),
            created=node.created,
            status=node.status,
            operator=node.operator,
            evals=n,
            successes=s,
            low=low,
            high=high,
            clade_evals=cs + cf,
            clade_successes=cs,
            score=scores.get(node.id) if n else None,
            failed_expansions=failed.get(node.id, 0),
            in_flight=in_flight.get(node.id, InFlight()),
            shipped=node.id == shipped,
        )
    header = dataclasses.replace(
        header,
        nodes=len(rows),
        evaluations=tree.n_evals,
        shipped=shipped,
        shipped_mean=best["mean"] if best else None,
        rule=rule,
    )
    return TreeSnapshot(header, rows, tree.root_id)


# ----------------------------------------------------------------------------- details


def _row(label: str) -> Any:
    """A NodeDetail field shown as one row of the Summary tab under `label`."""
    return field(default=None, metadata={"label": label})


@dataclass(frozen=True)
class NodeDetail:
    """Everything the Summary tab shows about one version: one labelled row per field.

    A new fact (e.g. an admission verdict, a second parent) is one more field made with
    `_row(label)` and filled in `RunData.detail`; the Summary tab shows it with no change.
    Fields left None are not shown.
    """

    version: str | None = _row("version")
    parent: str | None = _row("parent")
    created: str | None = _row("created")
    operator: str | None = _row("operator")
    status: str | None = _row("status")
    acceptance: str | None = _row("acceptance")
    lesson: str | None = _row("lesson")
    diagnosis: str | None = _row("diagnosis")
    own: str | None = _row("own")
    clade: str | None = _row("clade")
    final_choice: str | None = _row("final choice")
    evaluations: str | None = _row("evaluations")
    expansion_cost: str | None = _row("made for")
    evaluation_cost: str | None = _row("evaluated for")
    model_calls: str | None = _row("model calls")
    children: str | None = _row("children")
    failed_expansions: str | None = _row("failed expansions")
    memory_used: str | None = _row("memory shown")
    memory_produced: str | None = _row("memory made")
    in_flight: str | None = _row("in flight")
    commit: str | None = _row("commit")

    def rows(self) -> list[tuple[str, str]]:
        """(label, text) for every field that has a value, in declaration order."""
        return [
            (f.metadata["label"], str(getattr(self, f.name)))
            for f in dataclasses.fields(self)
            if f.metadata.get("label") and getattr(self, f.name) not in (None, "")
        ]


@dataclass(frozen=True, slots=True)
class EvalRow:
    """One evaluation of a version on a task."""

    id: int
    task_id: str
    status: str
    utility: int | None
    duration: float | None
    tokens: int
    cost_usd: float
    finished: float
    trajectory_path: str | None
    log_path: str | None
    detail: str


@dataclass(frozen=True, slots=True)
class Step:
    """One step of an agent's trajectory: the command it ran and what it saw."""

    number: int
    action: str
    observation: str
    exit_code: int | None = None
    note: str = ""  # a model-call or format error instead of an action
    thought: str = ""  # the model's words around its command


@dataclass(frozen=True)
class TrajectoryView:
    """An evaluation's artifacts: steps, final patch and grading report (each may be missing)."""

    evaluation: EvalRow
    steps: list[Step]
    patch: str
    report: str
    test_log: str
    notes: list[str]


@dataclass(frozen=True, slots=True)
class CallRow:
    """One recorded model call."""

    id: int
    time: float
    purpose: str
    model: str
    task_id: str | None
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    latency_s: float | None
    error: str | None


@dataclass(frozen=True, slots=True)
class RunListing:
    """One run in the picker."""

    name: str
    path: str
    status: str
    nodes: int
    evaluations: int
    best: str
    created: float
    updated: float
    error: str = ""


# ----------------------------------------------------------------------------- the run


class RunData:
    """A run opened read-only. Thread-safe: workers may call it while the UI thread does."""

    def __init__(self, run: Run) -> None:
        self._run = run
        self._lock = threading.Lock()
        self.path = Path(run.path)
        self.name = self.path.name
        self.config: dict[str, Any] = run.config
        self._version: int | None = None
        self._status: str | None = None

    @classmethod
    def open(cls, path: Path | str) -> "RunData":
        """Open a run read-only (ArchiveError, one line, if it is not a usable run)."""
        return cls(Run.open(Path(path)))

    def close(self) -> None:
        with self._lock:
            self._run.close()

    # ----- polling -------------------------------------------------------------------

    def changed(self) -> bool:
        """True when someone committed to the run (or its writer died) since the last call."""
        with self._lock:
            version = self._run.data_version()
            status = self._run.info().status
        changed = (version, status) != (self._version, self._status)
        self._version, self._status = version, status
        return changed

    # ----- the tree ------------------------------------------------------------------

    def header(self) -> RunHeader:
        with self._lock:
            info = self._run.info()
            spent = self._run.llm_call_totals()
        budget = self.config.get("budget") if isinstance(self.config.get("budget"), dict) else {}
        return RunHeader(
            name=self.name,
            path=str(self.path),
            status=info.status,
            live=info.status == "running",
            nodes=info.nodes,
            evaluations=info.evaluations,
            budget_evals=budget.get("evals"),
            cost_usd=float(spent["cost_usd"]),
            budget_usd=budget.get("usd"),
            tokens=int(spent["tokens"]),
            shipped=None,
            shipped_mean=None,
            rule=final_choice_settings(self.config)[0],
        )

    def snapshot(self) -> TreeSnapshot:
        """The tree now, with work in flight when the run is live."""
        header = self.header()
        with self._lock:
            tree = self._run.tree()
            in_flight = self._in_flight() if header.live else {}
        return snapshot_from_tree(tree, self.config, header, in_flight)

    def _in_flight(self) -> dict[int, InFlight]:
        """Evaluations and expansions whose model calls came after their last recorded result.

        The archive records only finished work, so work in flight is inferred from the
        calls the gateway logged since the current session started.
        """
        starts = self._run.events("session_start")
        if not starts:
            return {}
        since = starts[-1]["time"]
        done_evals: dict[tuple[int, str], float] = {}
        for row in self._run.evaluations(since=since):
            key = (row["node_id"], row["task_id"])
            done_evals[key] = max(done_evals.get(key, 0.0), row["finished"])
        done_expansions: dict[int, float] = {}
        for row in self._run.expansions(since=since):
            done_expansions[row["parent_id"]] = max(done_expansions.get(row["parent_id"], 0.0), row["finished"])
        evals: Counter[int] = Counter()
        expanding: set[int] = set()
        for group in self._run.llm_activity(since):
            node = group["node_id"]
            if node is None:
                continue
            if group["purpose"] in SOLVE_PURPOSES and group["task_id"]:
                if done_evals.get((node, group["task_id"]), 0.0) < group["last"]:
                    evals[node] += 1
            elif group["purpose"] in EXPAND_PURPOSES and done_expansions.get(node, 0.0) < group["last"]:
                expanding.add(node)
        return {n: InFlight(evals[n], n in expanding) for n in set(evals) | expanding}

    def find(self, text: str, limit: int = 1000) -> list[int]:
        """Ids of versions whose id, operator, status, lesson or diagnosis contains `text`."""
        with self._lock:
            return self._run.find_nodes(text, limit)

    def timeline(self) -> list[tuple]:
        """Everything that happened, oldest first (see `archive.Run.timeline`)."""
        with self._lock:
            return self._run.timeline()

    # ----- one version ---------------------------------------------------------------

    def detail(self, node_id: int, row: NodeRow | None = None) -> NodeDetail:
        """The Summary of one version; `row` (from the current snapshot) adds its statistics."""
        with self._lock:
            node = self._run.node(node_id)
            made_by = self._run.expansions(child_id=node_id)
            attempts = self._run.expansions(parent_id=node_id)
            evals = self._run.evaluation_totals(node_id)
            calls = self._run.llm_call_totals(node_id)
            used = self._run.memory_used(made_by[0]["id"]) if made_by else []
            produced = self._run.memory(run_key=self._run.key, touching=node_id)
        expansion = made_by[0] if made_by else None
        failed = [a for a in attempts if a["status"] != "ok"]
        if node["parent_id"] is None:
            acceptance = "seed agent (no parent)"
        elif expansion is not None:
            acceptance = f"accepted (expansion #{expansion['id']}: diff non-empty, contract kept, own tests passed)"
        else:
            acceptance = "added without an expansion record"
        detail = NodeDetail(
            version=str(node_id),
            parent="-" if node["parent_id"] is None else str(node["parent_id"]),
            created=fmt.when(node["created"]),
            operator=node["operator"] or "-",
            status=node["status"],
            acceptance=acceptance,
            lesson=node["lesson"] or (expansion or {}).get("lesson") or None,
            diagnosis=readable_diagnosis(node["diagnosis"] or (expansion or {}).get("diagnosis") or ""),
            evaluations=f"{evals['measured']} measured"
            + (f", {evals['rows'] - evals['measured']} infrastructure error(s) or abandoned"
               if evals["rows"] > evals["measured"] else ""),
            expansion_cost=(
                f"{fmt.money(expansion['cost_usd'])}, {fmt.tokens(expansion['tokens'])} tokens"
                + (f", {fmt.seconds(expansion['finished'] - expansion['started'])}" if expansion.get("started") else "")
                if expansion
                else None
            ),
            evaluation_cost=f"{fmt.money(evals['cost_usd'])}, {fmt.tokens(evals['tokens'])} tokens",
            model_calls=(
                f"{calls['calls']} calls, {fmt.tokens(calls['tokens'])} tokens, {fmt.money(calls['cost_usd'])}"
                + (f", {calls['errors']} failed" if calls["errors"] else "")
            ),
            failed_expansions=(
                f"{len(failed)}: " + "; ".join(fmt.one_line(a["reason"] or a["status"], 80) for a in failed[-3:])
                if failed
                else None
            ),
            memory_used=memory_text(used),
            memory_produced=memory_text([i for i in produced if i.node_id == node_id or i.node_id is None]),
            commit=node["commit_sha"][:12],
        )
        if row is not None:
            detail = dataclasses.replace(detail, **_stat_rows(row))
        return detail

    def evaluations(self, node_id: int, offset: int = 0, limit: int = 100) -> list[EvalRow]:
        """One page of a version's evaluations, in recording order."""
        with self._lock:
            rows = self._run.evaluations(node_id, limit=limit, offset=offset)
        return [_eval_row(r) for r in rows]

    def evaluation_count(self, node_id: int) -> int:
        with self._lock:
            return int(self._run.evaluation_totals(node_id)["rows"])

    def llm_calls(self, node_id: int, offset: int = 0, limit: int = 100) -> list[CallRow]:
        """One page of the model calls tagged with a version, in recording order."""
        with self._lock:
            rows = self._run.llm_calls(node_id, limit=limit, offset=offset)
        return [
            CallRow(
                id=r["id"], time=r["time"], purpose=r["purpose"], model=r["model"], task_id=r["task_id"],
                prompt_tokens=r["prompt_tokens"], completion_tokens=r["completion_tokens"],
                cost_usd=r["cost_usd"], latency_s=r["latency_s"], error=r["error"],
            )
            for r in rows
        ]

    def llm_call_count(self, node_id: int) -> int:
        with self._lock:
            return int(self._run.llm_call_totals(node_id)["calls"])

    def diff(self, old_id: int, new_id: int) -> str:
        """What changed from one version to another, as a unified diff."""
        with self._lock:
            return self._run.diff(old_id, new_id)

    def trajectory(self, row: EvalRow) -> TrajectoryView:
        """Read an evaluation's artifacts from the run directory (missing or bad files become notes)."""
        notes: list[str] = []
        traj_path = self._artifact(row.trajectory_path)
        folder = traj_path.parent if traj_path else (self._artifact(row.log_path).parent if row.log_path else None)
        steps: list[Step] = []
        if traj_path is None:
            notes.append("no trajectory was recorded for this evaluation")
        else:
            text = _read(traj_path)
            if not text:
                notes.append(f"trajectory {row.trajectory_path} is missing or empty")
            steps = parse_trajectory(text)
        patch = _read(folder / "patch.diff") if folder else ""
        report_text = _read(folder / "report.json") if folder else ""
        try:
            report = json.dumps(json.loads(report_text), indent=2) if report_text else ""
        except ValueError:
            report = report_text
        log = _read(self._artifact(row.log_path)) if row.log_path else ""
        return TrajectoryView(row, steps, patch, report, log, notes)

    def _artifact(self, rel: str | None) -> Path | None:
        if not rel:
            return None
        path = Path(rel)
        return path if path.is_absolute() else self.path / path

    # ----- writing (exports only) ----------------------------------------------------

    def export(self, node_id: int, dest: Path, fmt_name: str = "dir") -> Path:
        """Write a version exactly as `hgm export` does (Run.export); returns the path written."""
        with self._lock:
            return self._run.export(node_id, Path(dest), fmt_name)


def _stat_rows(row: NodeRow) -> dict[str, str]:
    own = "not measured yet"
    if row.evals:
        own = f"{row.mean:.2f} ({row.successes}/{row.evals} resolved), 95% interval [{row.low:.2f}, {row.high:.2f}]"
    clade = "not measured yet"
    if row.clade_evals:
        clade = f"{row.clade_mean:.2f} ({row.clade_successes}/{row.clade_evals} resolved by it and its descendants)"
    choice = "-" if row.score is None else f"score {row.score:.3f}" + (" (the version this run ships)" if row.shipped else "")
    flight = []
    if row.in_flight.evaluations:
        flight.append(f"{row.in_flight.evaluations} evaluation(s)")
    if row.in_flight.expanding:
        flight.append("an expansion")
    return {
        "own": own,
        "clade": clade,
        "final_choice": choice,
        "children": str(len(row.children)),
        "in_flight": ", ".join(flight) or None,
    }


def _eval_row(r: dict[str, Any]) -> EvalRow:
    duration = r["total_s"]
    if duration is None and r["started"] is not None:
        duration = r["finished"] - r["started"]
    return EvalRow(
        id=r["id"], task_id=r["task_id"], status=r["status"], utility=r["utility"], duration=duration,
        tokens=r["tokens"], cost_usd=r["cost_usd"], finished=r["finished"],
        trajectory_path=r["trajectory_path"], log_path=r["log_path"], detail=r["detail"],
    )


def memory_text(items: list[Any], shown: int = 4) -> str | None:
    """Memory items in a few lines: polarity, what hgm measured, title (None when there are none)."""
    if not items:
        return None
    from hgm.evolve.memory import outcome_line

    lines = [f"{len(items)} item(s)"]
    for item in items[:shown]:
        mark = " (retired)" if item.retired else ""
        lines.append(f"[{item.polarity}{mark}] {fmt.one_line(item.title, 80)}: {fmt.one_line(outcome_line(item), 100)}")
    if len(items) > shown:
        lines.append(f"... and {len(items) - shown} more (see `hgm memory`)")
    return "\n".join(lines)


def readable_diagnosis(text: str) -> str | None:
    """The stored diagnosis (JSON from hgm.evolve.diagnose) as a few readable lines."""
    if not text:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return text
    if not isinstance(data, dict):
        return text
    reply = data.get("reply") if isinstance(data.get("reply"), dict) else {}
    parts = []
    for key, label in (("what_went_wrong", "what went wrong"), ("improvement_proposal", "proposal"),
                       ("implementation_plan", "plan")):
        if reply.get(key):
            parts.append(f"{label}: {reply[key]}")
    if data.get("problem") and not parts:
        parts.append(str(data["problem"]))
    if data.get("fell_back"):
        parts.append("(the model's diagnosis failed; the lesson's default text was used)")
    return "\n".join(parts) or text


def _read(path: Path | None) -> str:
    if path is None:
        return ""
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_TEXT)
    except OSError:
        return ""
    return data.decode("utf-8", errors="replace")


def _clip(text: str, limit: int = MAX_STEP_TEXT) -> str:
    return text if len(text) <= limit else text[: limit // 2] + f"\n[... {len(text) - limit} characters cut ...]\n" + text[-limit // 2 :]


def parse_trajectory(text: str) -> list[Step]:
    """Steps from an agent's trajectory.jsonl (one JSON object per step; bad lines become notes)."""
    steps: list[Step] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            steps.append(Step(number, "", "", note=f"unreadable line: {fmt.one_line(line, 120)}"))
            continue
        if not isinstance(entry, dict):
            steps.append(Step(number, "", _clip(json.dumps(entry))))
            continue
        obs = entry.get("observation")
        exit_code = None
        if isinstance(obs, dict):
            exit_code = obs.get("exit_code")
            output = str(obs.get("output", ""))
            if obs.get("timed_out"):
                output += "\n[timed out]"
        else:
            output = "" if obs is None else str(obs)
        note = ""
        for key in ("llm_error", "format_error"):
            if entry.get(key):
                note = f"{key.replace('_', ' ')}: {fmt.one_line(str(entry[key]), 300)}"
        action = entry.get("action")
        steps.append(Step(int(entry.get("step", number)) if str(entry.get("step", "")).isdigit() else number,
                          _clip("" if action is None else str(action)), _clip(output), exit_code, note,
                          _thought(entry.get("messages"))))
    return steps


def _thought(messages: Any) -> str:
    """The model's reply of a step without its command block (the agent logs it in `messages`)."""
    if not isinstance(messages, list):
        return ""
    replies = [m.get("content") for m in messages if isinstance(m, dict) and m.get("role") == "assistant"]
    if not replies or not isinstance(replies[-1], str):
        return ""
    text = replies[-1].split("```", 1)[0].strip()
    return fmt.one_line(text.removeprefix("THOUGHT:").strip(), 600)


def list_runs(directory: Path) -> list[RunListing]:
    """The runs under `directory`, newest first (unreadable ones listed with their error)."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    paths = [directory] if (directory / "hgm.db").exists() else [
        p for p in directory.iterdir() if p.is_dir() and (p / "hgm.db").exists()
    ]
    listings = []
    for path in paths:
        try:
            with Run.open(path) as run:
                info = run.info()
                rule, quantile = final_choice_settings(run.config)
                best = best_in_tree(run.tree(), rule, quantile)
        except ArchiveError as exc:
            listings.append(RunListing(path.name, str(path), "unreadable", 0, 0, "-", 0.0, 0.0, str(exc)))
            continue
        best_text = f"{best['mean']:.2f} (node {best['node']}, {best['evals']} evals)" if best else "-"
        listings.append(RunListing(path.name, str(path), info.status, info.nodes, info.evaluations,
                                   best_text, info.created, info.updated))
    listings.sort(key=lambda r: (r.created, r.name), reverse=True)
    return listings
