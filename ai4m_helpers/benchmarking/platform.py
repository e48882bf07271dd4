"""The platform's core: competitions from bundles, participants with tokens, submissions checked
when they arrive, run by workers in the sandbox, scored in the worker (never in the sandbox),
and leaderboards that show only finished submissions.

Everything goes through :class:`Platform`; the HTTP service (:mod:`.service`) and the chapter
both drive it. The platform's data folder (database, public inputs) is hidden from every
submission; submissions run in folders of their own elsewhere.
"""
from __future__ import annotations

import ast
import csv
import dataclasses
import datetime as dt
import hashlib
import io
import os
import pathlib
import re
import secrets
import shutil
import socket
import tempfile
import threading

import numpy as np

from . import bundle as B
from .cgroup import discard
from .sandbox import SandboxLimits, group_prefix, run_code, split_steps, visible_gpus
from .storage import LimitReached, Store, utcnow

RESULT, CODE = "result", "code"
SLUG = re.compile(r"[a-z0-9][a-z0-9-]{0,99}")


MAX_PAYLOAD = 1024 * 1024          # a submission's file: code or predictions, never data
# A worker beats every HEARTBEAT_S seconds while it runs a submission; one silent for
# HEARTBEAT_STALE_S (four missed beats) is taken for dead, whatever host it ran on.
HEARTBEAT_S = 15.0
HEARTBEAT_STALE_S = 60.0


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def _from_npy(raw: bytes) -> np.ndarray:
    return np.load(io.BytesIO(raw), allow_pickle=False)


class Refused(Exception):
    """A request the platform turns down (bad token, closed phase, another's submission...)."""


class UnknownToken(Refused):
    """No participant has this token (the HTTP service answers 401, not 403)."""


class OverLimit(Refused, LimitReached):
    """The day's submissions are used up (the HTTP service answers 429: try again later)."""


@dataclasses.dataclass(frozen=True)
class Loaded:
    """A competition as a worker needs it."""

    id: int
    competition: B.Competition
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    labels: np.ndarray             # hidden, in x_test's order
    public: np.ndarray             # hidden: which of x_test's positions are public (the rest private)
    split_sha256: str


class Platform:
    def __init__(self, data_dir: str | pathlib.Path, url: str | None = None, runs_dir: str | None = None):
        self.data_dir = pathlib.Path(data_dir).resolve()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.url = url or f"sqlite:///{self.data_dir / 'platform.db'}"
        self.store = Store(self.url)
        # Runs live outside the data folder (which every submission's view hides), in one folder
        # per data folder, so that workers and restarts share it and nothing piles up.
        digest = hashlib.sha256(bytes(self.data_dir)).hexdigest()[:12]
        self.runs_dir = pathlib.Path(runs_dir or pathlib.Path(tempfile.gettempdir()) / f"ai4m-bench-runs-{digest}")
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.runs_dir, 0o711)     # a submission's own user may pass through, not list it

    # -- organisers -------------------------------------------------------------------------------------
    def create(self, slug: str, bundle_text: str) -> int:
        """A competition from a bundle: its splits drawn and hashed, its public inputs written to
        the data folder, its hidden labels into the database."""
        if not SLUG.fullmatch(slug):
            raise Refused(f"a competition's slug is letters, digits and dashes, not {slug!r}")
        comp = B.parse_bundle(bundle_text)
        try:                                   # before the folder below is overwritten
            self.store.competition(slug)
        except KeyError:
            pass
        else:
            raise Refused(f"a competition {slug!r} exists already")
        x, y = B.load_dataset(comp.dataset)
        splits = B.make_splits(comp, len(y))
        # Submissions see the public and private examples in a secret order: which is which stays
        # in the database, so a submission cannot treat the two boards differently.
        order = np.random.default_rng(secrets.randbits(64)).permutation(len(splits.test))
        test = splits.test[order]
        public = np.isin(test, splits.public)
        folder = self.data_dir / slug
        folder.mkdir(parents=True, exist_ok=True)
        np.savez(folder / "public.npz", x_train=x[splits.train], y_train=y[splits.train], x_test=x[test])
        return self.store.add_competition(slug, bundle_text, splits.sha256(x, y), _npy(y[test]), _npy(public))

    def load(self, slug: str) -> Loaded:
        row = self.store.competition(slug)
        with np.load(self.data_dir / slug / "public.npz") as f:
            public = {k: f[k] for k in f.files}
        return Loaded(row.id, B.parse_bundle(row.bundle), public["x_train"], public["y_train"], public["x_test"],
                      _from_npy(row.labels), _from_npy(row.public_mask), row.split_sha256)

    def public_inputs(self, slug: str) -> bytes:
        """What a participant may download to make a result file: the training examples with
        their labels and the test examples (in the secret order), as one ``.npz``."""
        self.store.competition(slug)                            # an unknown slug is a KeyError
        return (self.data_dir / slug / "public.npz").read_bytes()

    def register(self, name: str, organiser: bool = False) -> str:
        from sqlalchemy.exc import IntegrityError

        try:
            return self.store.add_participant(name, organiser)
        except IntegrityError:
            raise Refused(f"the name {name!r} is taken") from None

    def invite(self, token: str, name: str, organiser: bool = False) -> str:
        """Register a participant on an organiser's word (how the HTTP service registers)."""
        if not self._who(token).organiser:
            raise Refused("only an organiser may register participants")
        return self.register(name, organiser)

    # -- participants ---------------------------------------------------------------------------------
    def _who(self, token: str):
        who = self.store.authenticate(token)
        if who is None:
            raise UnknownToken("unknown token")
        return who

    def submit(self, token: str, slug: str, phase: str, kind: str, payload: bytes, label: str = "",
               now: dt.datetime | None = None) -> int:
        """Accept a submission, checked at once (early error detection): a result file for its
        format, length, types and NaN; code for its syntax and its ``fit``/``predict``. A refused
        one is recorded as failed (with the reason), never run, and not counted against the
        day's limit."""
        who = self._who(token)
        now = now or utcnow()
        comp = self.load(slug)
        phase_ = comp.competition.phase(phase)
        if not phase_.start <= now < phase_.end:
            raise Refused(f"phase {phase!r} is not open")
        if kind not in (RESULT, CODE):
            raise Refused(f"kind must be {RESULT!r} or {CODE!r}")
        if len(payload) > MAX_PAYLOAD:
            raise Refused(f"a submission is at most {MAX_PAYLOAD // 1024} kB")
        problem = (check_result_file(payload, len(comp.labels), np.unique(comp.y_train)) if kind == RESULT
                   else check_code(payload))
        try:
            return self.store.submit(comp.id, who.id, phase, kind, payload,
                                     comp.competition.limits.submissions_per_day, label, now, refused=problem)
        except LimitReached as err:
            raise OverLimit(str(err)) from None

    def submission(self, token: str, submission_id: int) -> dict:
        """A submission's status, scores and costs, for its owner (or an organiser) only."""
        sub = self._own(token, submission_id)
        return {"id": sub.id, "label": sub.label, "kind": sub.kind, "phase": sub.phase, "status": sub.status,
                "failure": sub.failure, "message": sub.message, "public": (sub.scores or {}).get("public"),
                "costs": sub.costs, "attempts": sub.attempts}

    def logs(self, token: str, submission_id: int) -> list[dict]:
        self._own(token, submission_id)
        return self.store.logs(submission_id)

    def _own(self, token: str, submission_id: int):
        who = self._who(token)
        try:
            sub = self.store.get(submission_id)
        except KeyError:
            raise Refused(f"no submission {submission_id}") from None
        if sub.participant_id != who.id and not who.organiser:
            raise Refused("this submission belongs to another participant")
        return sub

    def leaderboard(self, slug: str, phase: str, split: str = "public", token: str | None = None,
                    now: dt.datetime | None = None) -> list[dict]:
        """The public leaderboard at any time; the private one once the phase is over (before
        that, to organisers only)."""
        if split not in ("public", "private"):
            raise Refused(f"split must be 'public' or 'private', not {split!r}")
        comp = self.load(slug)
        comp.competition.phase(phase)                    # an unknown phase is an error on either board
        if split == "private" and not comp.competition.phase(phase).is_over(now or utcnow()):
            if token is None or not self._who(token).organiser:
                raise Refused("the private leaderboard opens when the phase ends")
        return self.store.leaderboard(comp.id, phase, split)

    def reap(self, stale_after: float | None = HEARTBEAT_STALE_S) -> list[int]:
        """Submissions whose worker died mid-run, now failed with "worker lost" (re-queue them
        with ``store.requeue``): a worker of this host that no longer runs, or a worker of any
        host whose heartbeat is older than ``stale_after`` seconds (None: this host's only).
        What their run had written here so far joins their logs."""
        lost = self.store.lost(worker_alive, stale_after)
        for sid in lost:
            for path in sorted(self.runs_dir.glob(f"*-submission-{sid}-attempt-*.std*")):
                for step, part in split_steps(path.read_text(errors="replace")):
                    self.store.add_log(sid, f"{step} (lost)", path.suffix.lstrip("."), part)
                discard(group_prefix(path.stem))       # the lost worker could not remove its group
        return lost


# -- checks at submission time ----------------------------------------------------------------------
def check_result_file(payload: bytes, n: int, allowed) -> str | None:
    """None for a valid result file (CSV with a header ``id,label``, one row per test example,
    ids 0..n-1 once each, integer labels of the task), else the one-line reason."""
    try:
        rows = list(csv.reader(io.StringIO(payload.decode("utf-8"))))
    except UnicodeDecodeError:
        return "the result file is not UTF-8 text"
    if not rows or [c.strip() for c in rows[0]] != ["id", "label"]:
        return "the result file must start with the header 'id,label'"
    body = rows[1:]
    if len(body) != n:
        return f"expected {n} predictions, got {len(body)}"
    try:
        ids = [int(r[0]) for r in body]
        values = [float(r[1]) for r in body]
    except (ValueError, IndexError):
        return "every row needs an integer id and a numeric label"
    if any(np.isnan(v) for v in values):
        return "a label is NaN"
    if sorted(ids) != list(range(n)):
        return f"ids must be 0..{n - 1}, each once"
    if any(v != int(v) or int(v) not in set(np.asarray(allowed).tolist()) for v in values):
        return "a label is not one of the task's classes"
    return None


def read_result_file(payload: bytes) -> np.ndarray:
    rows = list(csv.reader(io.StringIO(payload.decode("utf-8"))))[1:]
    out = np.empty(len(rows), dtype=np.int64)
    for r in rows:
        out[int(r[0])] = int(float(r[1]))
    return out


def check_code(payload: bytes) -> str | None:
    """None when the code parses and defines ``fit`` and ``predict``, else the reason."""
    try:
        tree = ast.parse(payload.decode("utf-8"))
    except (SyntaxError, UnicodeDecodeError) as err:
        return f"the code does not parse: {err}"
    names = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    missing = [f for f in ("fit", "predict") if f not in names]
    return f"the code defines no {' or '.join(missing)}()" if missing else None


def check_predictions(pred: np.ndarray, n: int, allowed) -> str | None:
    """The same checks on what a code submission wrote, before anything is scored."""
    pred = np.asarray(pred)
    if pred.ndim != 1 or len(pred) != n:
        return f"expected {n} predictions, got shape {pred.shape}"
    if pred.dtype.kind not in "iuf":
        return f"predictions must be numbers, got {pred.dtype}"
    if pred.dtype.kind == "f" and np.isnan(pred).any():
        return "a prediction is NaN"
    if pred.dtype.kind == "f" and not np.all(pred == np.round(pred)):
        return "predictions must be class labels, got fractions"
    if not np.isin(pred, np.asarray(allowed)).all():
        return "a prediction is not one of the task's classes"
    return None


# -- scoring --------------------------------------------------------------------------------------
def score(pred: np.ndarray, labels: np.ndarray, public: np.ndarray, metrics) -> dict:
    """Every metric on the public and on the private examples (``public``: a boolean mask)."""
    from sklearn.metrics import accuracy_score, f1_score

    fns = {"accuracy": accuracy_score, "macro_f1": lambda a, b: f1_score(a, b, average="macro")}
    pred, public = np.asarray(pred).astype(np.int64), np.asarray(public, dtype=bool)
    parts = {"public": public, "private": ~public}
    return {split: {m: float(fns[m](labels[s], pred[s])) for m in metrics} for split, s in parts.items()}


def verify_splits(comp: Loaded) -> str | None:
    """Recompute the split hash from the bundle and the dataset, as every worker does before it
    scores: None when it matches the stored one."""
    x, y = B.load_dataset(comp.competition.dataset)
    again = B.make_splits(comp.competition, len(y)).sha256(x, y)
    return None if again == comp.split_sha256 else f"split hash {again[:12]}… differs from the stored {comp.split_sha256[:12]}…"


# -- workers ----------------------------------------------------------------------------------------
def worker_id(n: int = 0) -> str:
    """host:pid:start:n. The process's start time tells a live worker from a later process that
    got the same pid."""
    import psutil

    return f"{socket.gethostname()}:{os.getpid()}:{psutil.Process().create_time():.3f}:{n}"


def worker_alive(worker: str | None) -> bool:
    import psutil

    if not worker:
        return False
    host, pid, started, _ = worker.rsplit(":", 3)
    if host != socket.gethostname():
        return True                                    # another host's worker: not ours to judge
    try:
        proc = psutil.Process(int(pid))
        return proc.status() != psutil.STATUS_ZOMBIE and f"{proc.create_time():.3f}" == started
    except psutil.NoSuchProcess:
        return False


class Heartbeat:
    """A thread that beats for a submission every ``every`` seconds while its run lasts."""

    def __init__(self, store, submission_id: int, worker: str, every: float = HEARTBEAT_S):
        self.store, self.submission_id, self.worker, self.every = store, submission_id, worker, every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"heartbeat-{submission_id}")

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            try:
                if not self.store.beat(self.submission_id, self.worker):
                    return                    # no longer ours: finished, or lost and re-queued
            except Exception:                 # a database hiccup: the next beat may get through
                continue

    def __enter__(self) -> "Heartbeat":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def process_next(platform: Platform, worker: str) -> int | None:
    """Claim, run, check and score one queued submission; returns its id (None: queue empty).
    An error of the platform itself fails the submission (and is logged) instead of the worker."""
    sub = platform.store.claim(worker)
    if sub is None:
        return None
    try:
        with Heartbeat(platform.store, sub.id, worker):
            _process(platform, sub, worker)
    except Exception as err:                                   # the worker goes on with the queue
        platform.store.add_log(sub.id, "platform", "stderr", f"{type(err).__name__}: {err}")
        platform.store.fail(sub.id, "crash", f"the platform failed on this submission: {err}", worker=worker)
    return sub.id


def sandbox_uid(submission_id: int, attempt: int) -> int:
    """The user id a run prefers, one for every (submission, attempt) (the sandbox takes the next
    free one if another run on the machine holds it)."""
    return 20000 + (submission_id * 8 + attempt % 8) % 40000


def _process(platform: Platform, sub, worker: str) -> None:
    slug = platform.store.competition_slug(sub.competition_id)
    comp = platform.load(slug)
    store, limits = platform.store, comp.competition.limits
    costs: dict = {}
    if sub.kind == CODE:
        folder = platform.runs_dir / f"{slug}-submission-{sub.id}-attempt-{sub.attempts}"
        shutil.rmtree(folder, ignore_errors=True)          # a leftover of an earlier database's run
        run = run_code(sub.payload.decode("utf-8"), comp.x_train, comp.y_train, comp.x_test,
                       SandboxLimits(limits.wall_s, limits.cpu_s, limits.memory_mb, limits.processes, gpu=limits.gpu),
                       folder, hide=(platform.data_dir, platform.runs_dir), uid=sandbox_uid(sub.id, sub.attempts))
        for stream, text in (("stdout", run.stdout), ("stderr", run.stderr)):
            for step, part in split_steps(text) or [("ingestion", "")]:
                store.add_log(sub.id, step, stream, part)
        for leftover in folder.parent.glob(f"{folder.name}*"):     # logs are in the database now
            shutil.rmtree(leftover, ignore_errors=True) if leftover.is_dir() else leftover.unlink()
        costs = dict(run.costs)
        if costs.get("predict_s") is not None and costs.get("n_test"):
            costs["ms_per_1k_predictions"] = 1e6 * costs["predict_s"] / costs["n_test"]
        if run.failure:
            store.add_log(sub.id, "ingestion", "platform", f"{run.failure}: {run.message}")
            store.fail(sub.id, run.failure, run.message, costs, worker=worker)
            return
        pred = run.predictions
    else:
        pred = read_result_file(sub.payload)
    problem = check_predictions(pred, len(comp.labels), np.unique(comp.y_train))
    if problem:
        store.add_log(sub.id, "scoring", "platform", f"malformed output: {problem}")
        store.fail(sub.id, "malformed output", problem, costs, worker=worker)
        return
    mismatch = verify_splits(comp)
    if mismatch:                                 # never score on splits other than the published ones
        raise RuntimeError(mismatch)
    scores = score(pred, comp.labels, comp.public, comp.competition.metrics)
    store.add_log(sub.id, "scoring", "stdout",
                  f"split hash {comp.split_sha256} verified; scored on {len(comp.labels)} examples")
    store.finish(sub.id, scores, costs, comp.competition.primary, worker=worker)


def drain(data_dir: str, url: str, runs_dir: str, n: int = 0) -> list[int]:
    """A worker: process queued submissions until there are none; the ids it processed."""
    platform = Platform(data_dir, url, runs_dir)
    me, done = worker_id(n), []
    while (sid := process_next(platform, me)) is not None:
        done.append(sid)
    return done


def worker_command(platform: Platform, n: int) -> list[str]:
    """The command line of one local worker process (``python -m ai4m_helpers.benchmarking.worker``)."""
    import sys

    return [sys.executable, "-m", "ai4m_helpers.benchmarking.worker", "--data-dir", str(platform.data_dir),
            "--runs-dir", str(platform.runs_dir), "--number", str(n)]


def worker_env(platform: Platform) -> dict:
    """The database URL travels in the environment, not on the command line: any process may read
    another's command line (/proc/PID/cmdline), only its own user its environment."""
    return {**os.environ, URL_VARIABLE: platform.url}


URL_VARIABLE = "AI4M_BENCH_DB"


def worker_gpu(n: int, devices: list[str] | None = None) -> dict:
    """Local worker ``n``'s one GPU (workers take the machine's GPUs in turn), or none."""
    devices = visible_gpus() if devices is None else devices
    return {"CUDA_VISIBLE_DEVICES": devices[n % len(devices)] if devices else ""}


def run_workers(platform: Platform, jobs: int = 2, backend: str = "local", address: str | None = None) -> list[int]:
    """Drain the queue with ``jobs`` workers: processes on this machine, or Ray tasks (a local
    Ray instance, or a cluster at ``address`` whose nodes share the data folder and database)."""
    args = (str(platform.data_dir), platform.url, str(platform.runs_dir))
    if backend == "local":
        import json
        import subprocess

        procs = [subprocess.Popen(worker_command(platform, n), stdout=subprocess.PIPE, text=True,
                                  env={**worker_env(platform), **worker_gpu(n)}) for n in range(jobs)]
        done = []
        for proc in procs:
            out, _ = proc.communicate()
            if proc.returncode == 0:
                done.extend(json.loads(out.strip().splitlines()[-1]))
        return sorted(done)
    if backend == "ray":
        import ray

        if not ray.is_initialized():
            ray.init(address=address, num_cpus=None if address else jobs, include_dashboard=False,
                     log_to_driver=False, configure_logging=False)
        # Ray hands each task its share of the cluster's GPUs (and sets CUDA_VISIBLE_DEVICES).
        gpus = ray.cluster_resources().get("GPU", 0)
        task = ray.remote(num_cpus=1, num_gpus=min(1.0, gpus / jobs), max_retries=0)(drain)
        return sorted(i for ids in ray.get([task.remote(*args, n) for n in range(jobs)]) for i in ids)
    raise ValueError(f"backend must be 'local' or 'ray', not {backend!r}")
