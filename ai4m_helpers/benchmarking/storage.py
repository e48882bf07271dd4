"""The platform's storage: competitions, participants, submissions and their logs, in a real
database through SQLAlchemy. SQLite by default (in WAL mode, so that other processes can read
while one writes; every transaction takes the write lock when it begins, so that a claim or a
limit check cannot be overtaken between its read and its write; a busy timeout makes concurrent
writers queue instead of failing);
PostgreSQL is one URL away (``postgresql+psycopg://user@host/db``), and the tests run the same
storage tests on both.

A submission moves ``queued`` → ``running`` → ``finished`` or ``failed`` (with a kind: crash,
timeout, memory, malformed output, missing file, worker lost). Only finished submissions have
scores, so only they can reach a leaderboard. A worker claims the oldest queued submission in one
transaction (``SELECT … FOR UPDATE SKIP LOCKED`` on PostgreSQL; SQLite locks the whole database
for the write), so two workers never run the same submission.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from typing import Any

from sqlalchemy import (JSON, Boolean, DateTime, Float, ForeignKey, Integer, LargeBinary, String, Text,
                        create_engine, event, func, select, update)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

QUEUED, RUNNING, FINISHED, FAILED = "queued", "running", "finished", "failed"
FAILURES = ("crash", "timeout", "memory", "malformed output", "missing file", "worker lost", "refused")


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class Base(DeclarativeBase):
    pass


class CompetitionRow(Base):
    __tablename__ = "competitions"
    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(100), unique=True)
    bundle: Mapped[str] = mapped_column(Text)
    split_sha256: Mapped[str] = mapped_column(String(64))
    labels: Mapped[bytes] = mapped_column(LargeBinary)      # hidden reference labels, npy bytes
    public_mask: Mapped[bytes] = mapped_column(LargeBinary)  # hidden: which test positions are public


class Participant(Base):
    __tablename__ = "participants"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    organiser: Mapped[bool] = mapped_column(Boolean, default=False)


class Submission(Base):
    __tablename__ = "submissions"
    id: Mapped[int] = mapped_column(primary_key=True)
    competition_id: Mapped[int] = mapped_column(ForeignKey("competitions.id"), index=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participants.id"), index=True)
    phase: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(10))            # "code" or "result"
    label: Mapped[str] = mapped_column(String(200), default="")
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    status: Mapped[str] = mapped_column(String(20), index=True, default=QUEUED)
    failure: Mapped[str | None] = mapped_column(String(40), nullable=True)
    message: Mapped[str] = mapped_column(Text, default="")
    created: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    started: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    worker: Mapped[str | None] = mapped_column(String(200), nullable=True)
    # Written by the worker every few seconds while it runs the submission: a worker on another
    # host cannot be asked whether it lives, but a heartbeat that stopped says it does not.
    heartbeat: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    scores: Mapped[dict | None] = mapped_column(JSON, nullable=True)      # {"public": {...}, "private": {...}}
    costs: Mapped[dict | None] = mapped_column(JSON, nullable=True)       # wall, CPU, memory, per step
    primary_public: Mapped[float | None] = mapped_column(Float, nullable=True)
    primary_private: Mapped[float | None] = mapped_column(Float, nullable=True)


class Log(Base):
    __tablename__ = "logs"
    id: Mapped[int] = mapped_column(primary_key=True)
    submission_id: Mapped[int] = mapped_column(ForeignKey("submissions.id"), index=True)
    step: Mapped[str] = mapped_column(String(40))
    stream: Mapped[str] = mapped_column(String(10))
    text: Mapped[str] = mapped_column(Text)


class LimitReached(Exception):
    """A participant has used the day's submissions."""


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    # SQLAlchemy's documented recipe: pysqlite's own transaction handling off, so that the
    # "begin" hook below decides how a transaction starts.
    dbapi_connection.isolation_level = None
    cur = dbapi_connection.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _stale(heartbeat: dt.datetime | None, now: dt.datetime, stale_after: float | None) -> bool:
    if stale_after is None or heartbeat is None:
        return False
    if heartbeat.tzinfo is None:              # SQLite hands back naive datetimes (stored as UTC)
        heartbeat = heartbeat.replace(tzinfo=dt.timezone.utc)
    return (now - heartbeat).total_seconds() > stale_after


class Store:
    """The platform's database. ``url`` is any SQLAlchemy URL; a bare path means a SQLite file."""

    def __init__(self, url: str):
        if "://" not in url:
            url = f"sqlite:///{url}"
        self.url = url
        self.sqlite = url.startswith("sqlite")
        kwargs = {"connect_args": {"timeout": 30}} if self.sqlite else {"pool_pre_ping": True}
        self.engine = create_engine(url, **kwargs)
        if self.sqlite:
            event.listen(self.engine, "connect", _sqlite_pragmas)
            # SQLite's own BEGIN is deferred; claim() needs the write lock from the start.
            event.listen(self.engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
        Base.metadata.create_all(self.engine)

    def session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    # -- competitions and participants ------------------------------------------------------------
    def add_competition(self, slug: str, bundle: str, split_sha256: str, labels: bytes, public_mask: bytes) -> int:
        with self.session() as s, s.begin():
            row = CompetitionRow(slug=slug, bundle=bundle, split_sha256=split_sha256, labels=labels,
                                 public_mask=public_mask)
            s.add(row)
            s.flush()
            return row.id

    def competition(self, slug: str) -> CompetitionRow:
        with self.session() as s:
            row = s.scalar(select(CompetitionRow).where(CompetitionRow.slug == slug))
        if row is None:
            raise KeyError(f"no competition {slug!r}")
        return row

    def competition_slug(self, competition_id: int) -> str:
        with self.session() as s:
            return s.get(CompetitionRow, competition_id).slug

    def add_participant(self, name: str, organiser: bool = False) -> str:
        """Register a participant; returns their token, which only they will ever see (the
        database keeps its SHA-256)."""
        token = secrets.token_hex(24)       # hex: never starts with a dash a command line would misread
        with self.session() as s, s.begin():
            s.add(Participant(name=name, token_sha256=_hash(token), organiser=organiser))
        return token

    def authenticate(self, token: str) -> Participant | None:
        digest = _hash(token or "")
        with self.session() as s:
            row = s.scalar(select(Participant).where(Participant.token_sha256 == digest))
        return row if row is not None and hmac.compare_digest(row.token_sha256, digest) else None

    # -- submissions ----------------------------------------------------------------------------------
    def submit(self, competition_id: int, participant_id: int, phase: str, kind: str, payload: bytes,
               per_day: int, label: str = "", now: dt.datetime | None = None, refused: str | None = None) -> int:
        """Queue a submission, or record it as refused at submission time (``refused`` holds the
        reason: it is never run and does not count against the day's limit). Raises
        :class:`LimitReached` past ``per_day`` counted submissions in the last 24 hours."""
        now = now or utcnow()
        with self.session() as s, s.begin():
            if refused is None:
                if not self.sqlite:
                    # Count-then-insert is a race under READ COMMITTED: lock the participant's
                    # row, so that their concurrent submissions count one after another (SQLite's
                    # BEGIN IMMEDIATE already serialises every writer).
                    s.execute(select(Participant.id).where(Participant.id == participant_id).with_for_update())
                used = s.scalar(select(func.count()).select_from(Submission).where(
                    Submission.participant_id == participant_id, Submission.competition_id == competition_id,
                    Submission.created > now - dt.timedelta(days=1), Submission.failure.is_distinct_from("refused")))
                if used >= per_day:
                    raise LimitReached(f"{used} submissions in the last 24 hours: the limit is {per_day}")
            row = Submission(competition_id=competition_id, participant_id=participant_id, phase=phase, kind=kind,
                             label=label, payload=payload, created=now, status=FAILED if refused else QUEUED,
                             failure="refused" if refused else None, message=refused or "", attempts=0)
            s.add(row)
            s.flush()
            return row.id

    def claim(self, worker: str) -> Submission | None:
        """The oldest queued submission, now running on ``worker``; None when the queue is empty."""
        with self.session() as s, s.begin():
            query = select(Submission).where(Submission.status == QUEUED).order_by(Submission.id).limit(1)
            if not self.sqlite:
                query = query.with_for_update(skip_locked=True)
            row = s.scalar(query)
            if row is None:
                return None
            row.status, row.worker = RUNNING, worker
            row.started = row.heartbeat = utcnow()
            row.attempts += 1
            return row

    def beat(self, submission_id: int, worker: str) -> bool:
        """The worker says it still runs the submission; False once it no longer does (finished,
        or declared lost and re-queued)."""
        with self.session() as s, s.begin():
            query = update(Submission).where(Submission.id == submission_id,
                                              Submission.status == RUNNING,
                                              Submission.worker == worker)
            return s.execute(query.values(heartbeat=utcnow())).rowcount == 1

    def _settle(self, submission_id: int, worker: str | None, **values) -> bool:
        """Write a run's outcome, but only while the submission is still running on ``worker``:
        a worker declared lost (and its submission re-queued) cannot overwrite a later attempt."""
        with self.session() as s, s.begin():
            query = update(Submission).where(Submission.id == submission_id, Submission.status == RUNNING)
            if worker is not None:
                query = query.where(Submission.worker == worker)
            return s.execute(query.values(finished=utcnow(), **values)).rowcount == 1

    def finish(self, submission_id: int, scores: dict, costs: dict, primary: str, worker: str | None = None) -> bool:
        return self._settle(submission_id, worker, status=FINISHED, scores=scores, costs=costs,
                            primary_public=scores["public"][primary], primary_private=scores["private"][primary])

    def fail(self, submission_id: int, failure: str, message: str, costs: dict | None = None,
             worker: str | None = None) -> bool:
        if failure not in FAILURES:
            raise ValueError(f"unknown failure {failure!r}")
        return self._settle(submission_id, worker, status=FAILED, failure=failure, message=message, costs=costs)

    def add_log(self, submission_id: int, step: str, stream: str, text: str) -> None:
        with self.session() as s, s.begin():
            s.add(Log(submission_id=submission_id, step=step, stream=stream, text=text))

    def logs(self, submission_id: int) -> list[dict]:
        with self.session() as s:
            rows = s.scalars(select(Log).where(Log.submission_id == submission_id).order_by(Log.id))
            return [{"step": r.step, "stream": r.stream, "text": r.text} for r in rows]

    def get(self, submission_id: int) -> Submission:
        with self.session() as s:
            row = s.get(Submission, submission_id)
        if row is None:
            raise KeyError(f"no submission {submission_id}")
        return row

    def submissions(self, competition_id: int | None = None) -> list[Submission]:
        with self.session() as s:
            query = select(Submission).order_by(Submission.id)
            if competition_id is not None:
                query = query.where(Submission.competition_id == competition_id)
            return list(s.scalars(query))

    def lost(self, alive, stale_after: float | None = None) -> list[int]:
        """Mark running submissions as failed with "worker lost" when their worker is no longer
        alive (``alive(worker) -> bool``, which can only judge this host's workers) or, with
        ``stale_after`` seconds, when their last heartbeat is older than that (a worker on any
        host); their logs so far are kept. Returns their ids."""
        now = utcnow()
        with self.session() as s, s.begin():
            rows = list(s.scalars(select(Submission).where(Submission.status == RUNNING)))
            ids = [r.id for r in rows if not alive(r.worker) or _stale(r.heartbeat, now, stale_after)]
            if ids:
                s.execute(update(Submission).where(Submission.id.in_(ids)).values(
                    status=FAILED, failure="worker lost", finished=utcnow(),
                    message="the worker running this submission stopped before it finished"))
            return ids

    def requeue(self, submission_id: int) -> None:
        """Queue a submission that failed for a reason not its own (a lost worker) again."""
        with self.session() as s, s.begin():
            row = s.get(Submission, submission_id)
            if row is None or row.failure != "worker lost":
                raise ValueError("only a submission whose worker was lost can be re-queued")
            row.status, row.failure, row.message, row.worker = QUEUED, None, "", None
            row.started = row.finished = row.heartbeat = None

    # -- leaderboards ---------------------------------------------------------------------------------
    def leaderboard(self, competition_id: int, phase: str, split: str = "public") -> list[dict[str, Any]]:
        """Each participant's best finished submission of the phase, chosen on the *public*
        score whichever board is shown (choosing on the private one would make it a second
        public board), and shown with its ``split`` scores, best first; ties go to the faster
        prediction step (``predict_s``), then to the earlier submission."""
        with self.session() as s:
            rows = s.execute(select(Submission, Participant.name).join(Participant).where(
                Submission.competition_id == competition_id, Submission.phase == phase,
                Submission.status == FINISHED, Submission.primary_public.is_not(None)))

            def speed(sub):
                value = (sub.costs or {}).get("predict_s")
                return value if isinstance(value, (int, float)) else float("inf")

            best: dict[str, tuple] = {}
            for sub, name in rows:
                key = (-sub.primary_public, speed(sub), sub.created)
                if name not in best or key < best[name][0]:
                    best[name] = (key, sub)
        primary = {sub.id: (sub.primary_public if split == "public" else sub.primary_private) for _, sub in best.values()}
        ranked = sorted(best.items(), key=lambda kv: (-primary[kv[1][1].id], *kv[1][0][1:]))
        board = []
        for rank, (name, (_, sub)) in enumerate(ranked, start=1):
            board.append({"rank": rank, "participant": name, "submission": sub.id, "label": sub.label,
                          **{f"{m}": v for m, v in sub.scores[split].items()},
                          **{k: v for k, v in (sub.costs or {}).items() if not isinstance(v, dict)}})
        return board

