"""The durable job store: jobs, their progress and results, and each job's ordered event log.

`JobStore` is the interface the service and the runner use; `SqliteJobStore` implements it in one SQLite file
(WAL journal, one transaction per change, `synchronous=NORMAL`). What that promises: a committed change (a job
accepted with a 202) survives a crash of the service process (`kill -9`, out of memory), because the commit is
in the WAL file in the operating system's cache; it does not promise to survive a power cut or a crash of the
operating system, where the transactions since the WAL was last synced to disk (at checkpoints) can be lost. A
server database implements the same protocol. Committed events are handed to `listen`ers once, after the commit
(the service's event streams subscribe to them).

States: `queued -> running -> succeeded | failed | cancelled`; `queued -> cancelled`; `running -> queued` when a
killed service restarts (`requeue_running`). Every change of state appends an event in the same transaction, so
the event log and the job never disagree.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Protocol

JobState = Literal["queued", "running", "succeeded", "failed", "cancelled"]
TERMINAL: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})


class JobNotFound(KeyError):
    """No job has this id."""


class IdempotencyConflict(ValueError):
    """An idempotency key was reused with a different request."""


@dataclass
class Progress:
    """Progress of a job: `step` of `total` workflow steps finished, and the overall `fraction` in [0, 1]."""

    step: int = 0
    total: int = 0
    fraction: float = 0.0
    message: str = ""


@dataclass
class Job:
    """One job as stored.

    Attributes:
        id: the job id (also the workflow run id, so a resumed job resumes its run).
        kind: the job kind (`storyboard`, `t2v`, ...).
        params: the validated parameters (JSON-able).
        seed: the run seed (drawn at submission when the client gave none, so a resumed run is the same run).
        state: `queued`, `running`, `succeeded`, `failed` or `cancelled`.
        progress: how far it got.
        created_at, started_at, finished_at: wall-clock seconds since the epoch (None until they happen).
        error: what went wrong (failed jobs).
        result: the kind's result (JSON-able; names the artifacts) once succeeded.
        idempotency_key: the client's key, when it gave one.
        cancel_requested: a cancellation was asked for while it ran.
        attempts: how often a runner started it (more than 1 after a restart of the service).
        model: the name of the model it runs on (None: a job stored before jobs named one; it runs on the
            service's default model).
    """

    id: str
    kind: str
    params: dict[str, Any]
    seed: int
    state: JobState
    progress: Progress = field(default_factory=Progress)
    created_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    error: str | None = None
    result: dict[str, Any] | None = None
    idempotency_key: str | None = None
    cancel_requested: bool = False
    attempts: int = 0
    model: str | None = None

    @property
    def finished(self) -> bool:
        return self.state in TERMINAL


@dataclass(frozen=True)
class JobEvent:
    """One entry of a job's event log; `seq` counts from 0 per job, with no gaps."""

    job_id: str
    seq: int
    time: float
    type: str
    payload: dict[str, Any]


class JobStore(Protocol):
    """Where jobs and their events live. Every method may be called from several threads at once."""

    def create(self, kind: str, params: dict[str, Any], seed: int, idempotency_key: str | None = None, *,
               request: dict[str, Any] | None = None, model: str | None = None) -> tuple[Job, bool]:
        """Store a new queued job; with a key already used for the same request, the existing job and False.
        Raises `IdempotencyConflict` when the key was used for a different request. `request` is the request as
        the client made it (e.g. with the seed it gave or None), compared whole; without it, kind and params.
        `model` names the model the job runs on."""
        ...

    def get(self, job_id: str) -> Job:
        """The job; raises `JobNotFound`."""
        ...

    def list(self, *, state: str | None = None, kind: str | tuple[str, ...] | None = None, limit: int = 50,
             offset: int = 0, after: str | None = None, oldest_first: bool = False) -> tuple[list[Job], int]:
        """Jobs newest first (or oldest first), filtered by state and kind (one or several), one page of them
        (from `offset`, or after the job `after` in that order), and the number of jobs that match the filters.
        Raises `JobNotFound` when `after` names no job."""
        ...

    def counts(self) -> dict[tuple[str, str], int]:
        """The number of jobs of each (state, kind) that has any."""
        ...

    def delete(self, job_id: str) -> None:
        """Remove a finished job and its events; raises `JobNotFound`, or ValueError when it has not finished."""
        ...

    def claim(self) -> Job | None:
        """Atomically move the oldest queued job to `running` and return it (None when none is queued)."""
        ...

    def requeue_running(self) -> list[str]:
        """Put jobs left `running` (by a service that died) back in the queue; returns their ids."""
        ...

    def update_progress(self, job_id: str, progress: Progress) -> None: ...

    def request_cancel(self, job_id: str) -> Job:
        """Cancel a queued job at once, or flag a running one; raises `JobNotFound`. Finished jobs are unchanged."""
        ...

    def finish(self, job_id: str, state: JobState, *, result: dict[str, Any] | None = None,
               error: str | None = None) -> Job:
        """Move a running job to a terminal state (and log it)."""
        ...

    def append_event(self, job_id: str, type: str, payload: dict[str, Any]) -> JobEvent: ...

    def events(self, job_id: str, since: int = 0, limit: int = 1000) -> list[JobEvent]:
        """The job's events with `seq >= since`, in order."""
        ...


_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    params TEXT NOT NULL,
    seed INTEGER NOT NULL,
    state TEXT NOT NULL,
    progress_step INTEGER NOT NULL DEFAULT 0,
    progress_total INTEGER NOT NULL DEFAULT 0,
    progress_fraction REAL NOT NULL DEFAULT 0,
    progress_message TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    error TEXT,
    result TEXT,
    idempotency_key TEXT UNIQUE,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    created_seq INTEGER NOT NULL,
    request TEXT,
    model TEXT
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs (state, created_seq);
CREATE INDEX IF NOT EXISTS jobs_created ON jobs (created_seq);
CREATE TABLE IF NOT EXISTS events (
    job_id TEXT NOT NULL REFERENCES jobs (id),
    seq INTEGER NOT NULL,
    time REAL NOT NULL,
    type TEXT NOT NULL,
    payload TEXT NOT NULL,
    PRIMARY KEY (job_id, seq)
);
"""


class SqliteJobStore:
    """`JobStore` in one SQLite file (WAL). One connection per thread; writes take the database lock at once
    (`BEGIN IMMEDIATE`), so claims and event numbers never race, across threads or processes.

    Args:
        path: the database file (its folder is created).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._listeners: list[Callable[[list[JobEvent]], None]] = []
        conn = self._conn()
        conn.executescript(_SCHEMA)
        columns = {r["name"] for r in conn.execute("PRAGMA table_info(jobs)")}
        for column in ("request", "model"):  # files written before they were kept
            if column not in columns:
                conn.execute(f"ALTER TABLE jobs ADD COLUMN {column} TEXT")

    def __repr__(self) -> str:
        return f"SqliteJobStore({str(self.path)!r})"

    # -- connections and transactions ---------------------------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")  # with WAL: survives a crash of the process, not of the machine
            conn.execute("PRAGMA foreign_keys=ON")
            self._local.conn = conn
        return conn

    def _tx(self) -> "_Transaction":
        return _Transaction(self._conn(), self._publish)

    def listen(self, listener: Callable[[list[JobEvent]], None]) -> None:
        """Call `listener(events)` with the events of each transaction once it has committed (in the thread that
        committed it), so every event is published exactly once, by whoever wrote it."""
        self._listeners.append(listener)

    def _publish(self, events: list[JobEvent]) -> None:
        for listener in self._listeners:
            try:
                listener(events)
            except Exception:  # noqa: BLE001 - a listener must never undo or fail a committed change
                logging.getLogger("studio.jobs").exception("an event listener failed")

    # -- jobs --------------------------------------------------------------------------------------------------
    def create(self, kind: str, params: dict[str, Any], seed: int, idempotency_key: str | None = None, *,
               request: dict[str, Any] | None = None, model: str | None = None) -> tuple[Job, bool]:
        job_id = uuid.uuid4().hex
        now = time.time()
        params_json = json.dumps(params, sort_keys=True)
        request_json = json.dumps(request, sort_keys=True) if request is not None else None
        with self._tx() as db:
            if idempotency_key is not None:
                row = db.execute("SELECT * FROM jobs WHERE idempotency_key = ?", (idempotency_key,)).fetchone()
                if row is not None:
                    existing = _job(row)
                    same = (row["request"] == request_json if row["request"] is not None and request_json is not None
                            else existing.kind == kind and row["params"] == params_json)
                    if not same:
                        raise IdempotencyConflict(
                            f"Idempotency-Key {idempotency_key!r} was already used for job {existing.id} with a "
                            "different request; use a new key for a new request")
                    return existing, False
            seq = db.execute("SELECT COALESCE(MAX(created_seq), 0) + 1 FROM jobs").fetchone()[0]
            db.execute(
                "INSERT INTO jobs (id, kind, params, seed, state, created_at, idempotency_key, created_seq, request, "
                "model) VALUES (?, ?, ?, ?, 'queued', ?, ?, ?, ?, ?)",
                (job_id, kind, params_json, int(seed), now, idempotency_key, seq, request_json, model),
            )
            _append(db, job_id, "queued", {"kind": kind}, now)
            return _load(db, job_id), True

    def get(self, job_id: str) -> Job:
        return _load(self._conn(), job_id)

    def list(self, *, state: str | None = None, kind: str | tuple[str, ...] | None = None, limit: int = 50,
             offset: int = 0, after: str | None = None, oldest_first: bool = False) -> tuple[list[Job], int]:
        where, args = [], []
        if state is not None:
            where.append("state = ?")
            args.append(state)
        if kind is not None:
            kinds = (kind,) if isinstance(kind, str) else tuple(kind)
            where.append(f"kind IN ({', '.join('?' * len(kinds))})")
            args.extend(kinds)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        conn = self._conn()
        total = conn.execute(f"SELECT COUNT(*) FROM jobs {clause}", args).fetchone()[0]
        if after is not None:  # the page, not the total, starts after it
            row = conn.execute("SELECT created_seq FROM jobs WHERE id = ?", (after,)).fetchone()
            if row is None:
                raise JobNotFound(after)
            where.append("created_seq > ?" if oldest_first else "created_seq < ?")
            args.append(row["created_seq"])
            clause = f"WHERE {' AND '.join(where)}"
        order = "ASC" if oldest_first else "DESC"
        rows = conn.execute(f"SELECT * FROM jobs {clause} ORDER BY created_seq {order} LIMIT ? OFFSET ?",
                            [*args, int(limit), int(offset)]).fetchall()
        return [_job(r) for r in rows], int(total)

    def counts(self) -> dict[tuple[str, str], int]:
        rows = self._conn().execute("SELECT state, kind, COUNT(*) AS n FROM jobs GROUP BY state, kind").fetchall()
        return {(r["state"], r["kind"]): int(r["n"]) for r in rows}

    def delete(self, job_id: str) -> None:
        with self._tx() as db:
            state = _load(db, job_id).state
            if state not in TERMINAL:
                raise ValueError(f"job {job_id} is {state}; only a finished job can be deleted")
            db.execute("DELETE FROM events WHERE job_id = ?", (job_id,))
            db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))

    def claim(self) -> Job | None:
        now = time.time()
        with self._tx() as db:
            row = db.execute("SELECT id FROM jobs WHERE state = 'queued' ORDER BY created_seq LIMIT 1").fetchone()
            if row is None:
                return None
            db.execute("UPDATE jobs SET state = 'running', started_at = COALESCE(started_at, ?), "
                       "attempts = attempts + 1 WHERE id = ?", (now, row["id"]))
            job = _load(db, row["id"])
            _append(db, job.id, "started", {"attempt": job.attempts}, now)
            return job

    def requeue_running(self) -> list[str]:
        now = time.time()
        with self._tx() as db:
            ids = [r["id"] for r in db.execute("SELECT id FROM jobs WHERE state = 'running' ORDER BY created_seq")]
            for job_id in ids:
                db.execute("UPDATE jobs SET state = 'queued' WHERE id = ?", (job_id,))
                _append(db, job_id, "requeued", {"reason": "the service restarted while the job ran"}, now)
            return ids

    def update_progress(self, job_id: str, progress: Progress) -> None:
        with self._tx() as db:
            db.execute("UPDATE jobs SET progress_step = ?, progress_total = ?, progress_fraction = ?, "
                       "progress_message = ? WHERE id = ?",
                       (progress.step, progress.total, float(progress.fraction), progress.message, job_id))

    def request_cancel(self, job_id: str) -> Job:
        now = time.time()
        with self._tx() as db:
            job = _load(db, job_id)
            if job.state == "queued":
                db.execute("UPDATE jobs SET state = 'cancelled', cancel_requested = 1, finished_at = ?, "
                           "error = 'cancelled before it started' WHERE id = ?", (now, job_id))
                _append(db, job_id, "cancelled", {"while": "queued"}, now)
            elif job.state == "running" and not job.cancel_requested:
                db.execute("UPDATE jobs SET cancel_requested = 1 WHERE id = ?", (job_id,))
                _append(db, job_id, "cancel_requested", {}, now)
            return _load(db, job_id)

    def finish(self, job_id: str, state: JobState, *, result: dict[str, Any] | None = None,
               error: str | None = None) -> Job:
        if state not in TERMINAL:
            raise ValueError(f"finish() takes a terminal state {sorted(TERMINAL)}, got {state!r}")
        now = time.time()
        with self._tx() as db:
            job = _load(db, job_id)
            if job.state in TERMINAL:  # e.g. cancelled while queued, then a stale runner reports back
                return job
            fraction_sql = (", progress_fraction = 1.0, progress_step = progress_total, progress_message = 'done'"
                            if state == "succeeded" else "")
            db.execute(f"UPDATE jobs SET state = ?, finished_at = ?, result = ?, error = ?{fraction_sql} WHERE id = ?",
                       (state, now, json.dumps(result) if result is not None else None, error, job_id))
            _append(db, job_id, state, {"error": error} if error else {}, now)
            return _load(db, job_id)

    # -- events ------------------------------------------------------------------------------------------------
    def append_event(self, job_id: str, type: str, payload: dict[str, Any]) -> JobEvent:
        with self._tx() as db:
            return _append(db, job_id, type, payload, time.time())

    def events(self, job_id: str, since: int = 0, limit: int = 1000) -> list[JobEvent]:
        rows = self._conn().execute(
            "SELECT * FROM events WHERE job_id = ? AND seq >= ? ORDER BY seq LIMIT ?", (job_id, int(since), int(limit))
        ).fetchall()
        return [JobEvent(r["job_id"], r["seq"], r["time"], r["type"], json.loads(r["payload"])) for r in rows]


class _Transaction:
    """`BEGIN IMMEDIATE ... COMMIT`, rolled back when the body raises; the events appended in it are handed to
    `publish` after the commit."""

    def __init__(self, conn: sqlite3.Connection, publish: Callable[[list[JobEvent]], None]) -> None:
        self.conn = conn
        self.publish = publish
        self.events: list[JobEvent] = []

    def __enter__(self) -> "_Transaction":
        self.conn.execute("BEGIN IMMEDIATE")
        return self

    def execute(self, sql: str, args: Any = ()) -> sqlite3.Cursor:
        return self.conn.execute(sql, args)

    def __exit__(self, exc_type, exc, tb) -> None:
        self.conn.execute("ROLLBACK" if exc_type is not None else "COMMIT")
        if exc_type is None and self.events:
            self.publish(self.events)


def _append(db: _Transaction, job_id: str, type: str, payload: dict[str, Any], now: float) -> JobEvent:
    seq = db.execute("SELECT COALESCE(MAX(seq), -1) + 1 FROM events WHERE job_id = ?", (job_id,)).fetchone()[0]
    db.execute("INSERT INTO events (job_id, seq, time, type, payload) VALUES (?, ?, ?, ?, ?)",
               (job_id, seq, now, type, json.dumps(payload, default=str)))
    event = JobEvent(job_id, seq, now, type, payload)
    db.events.append(event)
    return event


def _load(db: sqlite3.Connection | _Transaction, job_id: str) -> Job:
    """The stored job `job_id`; raises `JobNotFound`."""
    row = db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
    if row is None:
        raise JobNotFound(job_id)
    return _job(row)


def _job(row: sqlite3.Row) -> Job:
    return Job(
        id=row["id"], kind=row["kind"], params=json.loads(row["params"]), seed=row["seed"], state=row["state"],
        progress=Progress(row["progress_step"], row["progress_total"], row["progress_fraction"],
                          row["progress_message"]),
        created_at=row["created_at"], started_at=row["started_at"], finished_at=row["finished_at"],
        error=row["error"], result=json.loads(row["result"]) if row["result"] else None,
        idempotency_key=row["idempotency_key"], cancel_requested=bool(row["cancel_requested"]),
        attempts=row["attempts"], model=row["model"],
    )
