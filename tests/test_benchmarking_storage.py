"""The benchmarking platform's storage on both of its back ends, SQLite (a file, in WAL mode) and a
real PostgreSQL 15 server started for the session: concurrent submissions against the day's
limit, concurrent claims, and a worker killed in the middle of a submission."""
from __future__ import annotations

import datetime as dt
import os
import pathlib
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid

import pytest

from ai4m_helpers.benchmarking.cgroup import _parents
from ai4m_helpers.benchmarking.platform import Platform, process_next, worker_command, worker_env, worker_id
from ai4m_helpers.benchmarking.sandbox import group_prefix, isolation
from ai4m_helpers.benchmarking.storage import FAILED, FINISHED, QUEUED, RUNNING, LimitReached, Store
from benchmarking_support import MAJORITY, bundle

PG_BIN = pathlib.Path(os.environ.get("AI4M_PG_BIN", "/usr/lib/postgresql/15/bin"))


# -- a real PostgreSQL server for the session -------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def postgres_server():
    """A throw-away PostgreSQL cluster: ``initdb`` in a temporary folder (as the ``postgres`` user
    when the tests run as root, since initdb refuses root), listening on a free port of 127.0.0.1
    only and on a socket in that folder, trust authentication. Yields the URL of its ``postgres``
    database (``postgresql+psycopg://postgres@127.0.0.1:PORT/postgres``); stopped
    (``pg_ctl stop -m fast``) and removed at the end."""
    missing = [name for name in ("initdb", "pg_ctl", "postgres") if not (PG_BIN / name).exists()]
    if missing:
        pytest.skip(f"PostgreSQL 15 binaries not found in {PG_BIN} (missing {', '.join(missing)}; "
                    "apt-get install postgresql-15, or set AI4M_PG_BIN)")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip('the PostgreSQL driver is not installed: pip install "psycopg[binary]>=3.1"')
    as_root = os.geteuid() == 0
    if as_root:
        import pwd

        try:
            pg_user = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to run initdb as")
    prefix = ["runuser", "-u", "postgres", "--"] if as_root else []
    folder = pathlib.Path(tempfile.mkdtemp(prefix="ai4m-pg-"))
    if as_root:
        os.chown(folder, pg_user.pw_uid, pg_user.pw_gid)
    data, log = folder / "data", folder / "server.log"
    port = _free_port()
    env = {**os.environ, "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"}
    subprocess.run([*prefix, str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
                    "--encoding=UTF8", "--no-sync"], check=True, capture_output=True, env=env, cwd=folder)
    options = (f"-c listen_addresses=127.0.0.1 -c port={port} -k {folder} -c fsync=off "
               "-c synchronous_commit=off -c full_page_writes=off -c max_connections=100")
    started = subprocess.run([*prefix, str(PG_BIN / "pg_ctl"), "start", "-D", str(data), "-l", str(log), "-w",
                              "-t", "60", "-o", options], capture_output=True, text=True, env=env, cwd=folder)
    if started.returncode != 0:
        text = log.read_text() if log.exists() else ""
        shutil.rmtree(folder, ignore_errors=True)
        raise RuntimeError(f"PostgreSQL did not start: {started.stderr}\n{text}")
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*prefix, str(PG_BIN / "pg_ctl"), "stop", "-D", str(data), "-m", "fast", "-w"],
                       capture_output=True, env=env, cwd=folder)
        shutil.rmtree(folder, ignore_errors=True)


def _admin(server_url: str, sql: str) -> None:
    import psycopg

    with psycopg.connect(server_url.replace("postgresql+psycopg", "postgresql"), autocommit=True) as conn:
        conn.execute(sql)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    """A fresh, empty database per test: a SQLite file in ``tmp_path``, or a database of its own
    on the session's PostgreSQL server (dropped afterwards)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'platform.db'}"
        return
    server = request.getfixturevalue("postgres_server")
    name = f"t_{uuid.uuid4().hex[:12]}"
    _admin(server, f"CREATE DATABASE {name}")
    try:
        yield server.rsplit("/", 1)[0] + f"/{name}"
    finally:
        _admin(server, f"DROP DATABASE {name} WITH (FORCE)")


def _run_threads(n: int, target) -> list:
    """``target(i)`` on ``n`` threads started together; their results in order (a thread's
    exception is raised here)."""
    barrier = threading.Barrier(n)
    results, errors = [None] * n, []

    def run(i):
        try:
            barrier.wait()
            results[i] = target(i)
        except BaseException as err:          # noqa: BLE001 - re-raised in the main thread
            errors.append(err)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    if errors:
        raise errors[0]
    return results


def _competition_and_participants(store: Store, names=("ada", "bob")):
    cid = store.add_competition("c", "bundle", "0" * 64, b"", b"")
    return cid, [store.authenticate(store.add_participant(n)).id for n in names]


# -- concurrency --------------------------------------------------------------------------------------
def test_concurrent_submissions_accept_exactly_the_days_limit(db_url):
    """Eight threads, each with its own engine (as separate workers or web processes have), submit
    five each: four threads for each of two participants, with a limit of 7 a day. Exactly 7 per
    participant get in, the other 13 raise LimitReached: no lost writes, no duplicates, and no
    submission past the limit. Three rounds (three competitions), since a race shows only now
    and then: without a lock on PostgreSQL, one round in five or so still came out right."""
    per_day, each, threads, rounds = 7, 5, 8, 3
    store = Store(db_url)
    ada, bob = (store.authenticate(store.add_participant(n)).id for n in ("ada", "bob"))
    stores = [Store(db_url) for _ in range(threads)]
    now = dt.datetime(2026, 6, 1, 12, tzinfo=dt.timezone.utc)
    try:
        for round_ in range(rounds):
            cid = store.add_competition(f"c{round_}", "bundle", "0" * 64, b"", b"")

            def submit(i):
                who, accepted, refused = (ada, bob)[i % 2], [], 0
                for k in range(each):
                    try:
                        accepted.append(stores[i].submit(cid, who, "main", "result", b"x", per_day, f"{i}-{k}", now))
                    except LimitReached:
                        refused += 1
                return who, accepted, refused

            results = _run_threads(threads, submit)
            rows = store.submissions(cid)
            for who in (ada, bob):
                accepted = [sid for w, ids, _ in results if w == who for sid in ids]
                refused = sum(r for w, _, r in results if w == who)
                assert (round_, len(accepted), refused) == (round_, per_day, threads // 2 * each - per_day)
                mine = [r for r in rows if r.participant_id == who]
                assert sorted(r.id for r in mine) == sorted(accepted)         # every accepted id is stored
            assert len({r.id for r in rows}) == len(rows) == 2 * per_day    # no duplicates, nothing extra
            assert len({r.label for r in rows}) == len(rows)
            assert all(r.status == QUEUED for r in rows)
    finally:
        for s in (store, *stores):
            s.engine.dispose()


def test_concurrent_claims_take_every_submission_exactly_once(db_url):
    n, workers = 40, 4
    store = Store(db_url)
    cid, (ada,) = _competition_and_participants(store, ("ada",))
    ids = [store.submit(cid, ada, "main", "result", b"x", n, f"s{k}") for k in range(n)]
    stores = [Store(db_url) for _ in range(workers)]

    def drain(i):
        got = []
        while (sub := stores[i].claim(f"host:{i}:0")) is not None:
            got.append(sub.id)
        return got

    try:
        claimed = _run_threads(workers, drain)
        flat = [sid for got in claimed for sid in got]
        assert sorted(flat) == ids                                           # each once, none missed
        rows = {r.id: r for r in store.submissions(cid)}
        for i, got in enumerate(claimed):
            for sid in got:
                assert rows[sid].status == RUNNING and rows[sid].worker == f"host:{i}:0"
                assert rows[sid].attempts == 1
        assert store.claim("host:9:0") is None
    finally:
        for s in (store, *stores):
            s.engine.dispose()


# -- a worker killed mid-run -------------------------------------------------------------------------
BUNDLE = bundle("digits", wall_s=25, cpu_s=20)
QUICK = MAJORITY

# Sleeps on its first attempt only, so that the re-queued submission finishes on the second: the
# attempt ends the name of its run folder, which is the run's working directory and HOME (with a
# user of its own, the sandbox works in a view of that folder, and HOME still names it).
def sleeper_code(flag: pathlib.Path) -> bytes:
    """A submission that sleeps in fit() while ``flag`` exists (its first attempt), then answers
    the majority class. ``flag`` must be where a run can see it (below the interpreter's prefix:
    /tmp is fresh in every run)."""
    return f"""import os, time
import numpy as np
def fit(X, y):
    print("fitting", flush=True)
    if os.path.exists({str(flag)!r}):
        time.sleep(30)
    return int(np.bincount(y).argmax())
def predict(m, X):
    return np.full(len(X), m)
""".encode()


def _row(store: Store, sid: int) -> dict:
    r = store.get(sid)
    return {k: getattr(r, k) for k in ("status", "failure", "message", "worker", "attempts", "scores",
                                       "primary_public", "primary_private", "started", "finished", "payload")}


def _end_of(procs, timeout: float = 10.0) -> list:
    """The processes of ``procs`` still running after ``timeout`` seconds."""
    import psutil

    deadline = time.monotonic() + timeout
    while (alive := [p for p in procs if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]) and \
            time.monotonic() < deadline:
        time.sleep(0.05)
    return alive


def test_a_killed_worker_is_reaped_requeued_and_finished_by_another(db_url, tmp_path):
    """A real worker process, killed (SIGKILL) while its submission sleeps in fit(): reaping marks
    the submission failed with "worker lost" and keeps its logs (the worker writes a run's logs
    only when the run returns, so the test writes one line itself first); the other rows and the
    database are intact; re-queued, it is finished by a new worker, with the submission after it."""
    import psutil

    platform = Platform(tmp_path / "data", url=db_url)
    store = platform.store
    flag = pathlib.Path(tempfile.mkdtemp(prefix="ai4m-test-", dir=sys.prefix)) / "first attempt"
    flag.touch()
    flag.parent.chmod(0o755)
    try:
        platform.create("digits", BUNDLE)
        tok = platform.register("ada")
        done = platform.submit(tok, "digits", "main", "code", QUICK, "done")
        assert process_next(platform, worker_id(9)) == done                  # finished before the kill
        sleeper = platform.submit(tok, "digits", "main", "code", sleeper_code(flag), "sleeper")
        waiting = platform.submit(tok, "digits", "main", "code", QUICK, "waiting")
        store.add_log(sleeper, "worker", "stdout", "a log line written before the kill")
        others = {sid: (_row(store, sid), store.logs(sid)) for sid in (done, waiting)}
        sleeper_logs = store.logs(sleeper)

        def in_fit() -> bool:
            outs = platform.runs_dir.glob(f"*-{sleeper}-attempt-1.stdout")
            return any("fitting" in f.read_text(errors="replace") for f in outs)

        errors = tmp_path / "worker.stderr"
        with open(errors, "wb") as err:
            worker = subprocess.Popen(worker_command(platform, 0), stdout=subprocess.DEVNULL, stderr=err,
                                      env=worker_env(platform))
        sandbox = []
        try:
            deadline = time.monotonic() + 30
            while not (sandbox and in_fit()):     # running, and the submission inside its fit()
                assert worker.poll() is None, f"the worker ended early: {errors.read_text()}"
                assert time.monotonic() < deadline, "the sleeper did not start within 30 s"
                if store.get(sleeper).status == RUNNING:
                    sandbox = psutil.Process(worker.pid).children(recursive=True)
                time.sleep(0.1)
            assert store.get(sleeper).status == RUNNING
            assert any(p.is_running() for p in sandbox), "the sleeper's first attempt did not sleep"
            assert store.get(sleeper).worker.split(":")[1] == str(worker.pid)
            worker.send_signal(signal.SIGKILL)
            worker.wait(10)                       # reaped: a zombie's pid still "exists"
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
            left = _end_of(sandbox, 10 if isolation()["own processes"] else 0)
            for p in left:                        # without root the submission outlives its worker
                p.kill()
        assert not left or not isolation()["own processes"], "the run outlived its worker"

        assert platform.reap() == [sleeper]
        if isolation()["control group"]:               # the lost run's group is gone too
            prefix = group_prefix(f"digits-submission-{sleeper}-attempt-1")
            assert not any(list(parent.glob(f"{prefix}*")) for parent in _parents()[1])
        lost = store.get(sleeper)
        assert (lost.status, lost.failure, lost.attempts) == (FAILED, "worker lost", 1)
        logs = store.logs(sleeper)
        assert logs[:len(sleeper_logs)] == sleeper_logs                      # its logs so far are kept,
        assert {"step": "fit (lost)", "stream": "stdout", "text": "fitting"} in logs   # and its run's output
        assert {sid: (_row(store, sid), store.logs(sid)) for sid in others} == others
        if store.sqlite:
            with sqlite3.connect(db_url.removeprefix("sqlite:///")) as conn:
                assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert platform.reap() == []

        flag.unlink()                                     # the second attempt does not sleep
        store.requeue(sleeper)
        assert store.get(sleeper).status == QUEUED
        second = subprocess.run(worker_command(platform, 1), capture_output=True, text=True, timeout=60,
                                env=worker_env(platform))
        assert second.returncode == 0, second.stderr
        assert second.stdout.strip().splitlines()[-1] == f"[{sleeper}, {waiting}]"
        again = store.get(sleeper)
        assert (again.status, again.failure, again.attempts) == (FINISHED, None, 2)
        assert again.scores == store.get(done).scores                       # the same majority class
        assert store.get(waiting).status == FINISHED
        assert store.logs(sleeper)[:len(sleeper_logs)] == sleeper_logs
    finally:
        store.engine.dispose()
        shutil.rmtree(platform.runs_dir, ignore_errors=True)
        shutil.rmtree(flag.parent, ignore_errors=True)


def test_a_worker_of_another_host_is_lost_when_its_heartbeat_stops(db_url, tmp_path):
    """A worker on another host cannot be asked whether it lives: its submission is reaped only
    once its heartbeat is older than the limit, and a worker that beats keeps its submission."""
    from ai4m_helpers.benchmarking.platform import Heartbeat

    platform = Platform(tmp_path / "data", url=db_url)
    store = platform.store
    platform.create("digits", BUNDLE)
    tok = platform.register("ada")
    silent = platform.submit(tok, "digits", "main", "code", QUICK, "silent")
    beating = platform.submit(tok, "digits", "main", "code", QUICK, "beating")
    elsewhere = "a-host-far-away:4242:1700000000.000:0"
    assert store.claim(elsewhere + "a").id == silent and store.claim(elsewhere + "b").id == beating
    assert platform.reap() == []                     # alive as far as this host can tell
    first = store.get(beating).heartbeat
    with Heartbeat(store, beating, elsewhere + "b", every=0.05):
        time.sleep(1.2)
        assert store.get(beating).heartbeat > first
        assert platform.reap(stale_after=0.6) == [silent]
    lost = store.get(silent)
    assert (lost.status, lost.failure) == (FAILED, "worker lost")
    assert store.get(beating).status == RUNNING
    assert not store.beat(silent, elsewhere + "a")   # a lost worker's late beat changes nothing
    store.requeue(silent)
    assert store.get(silent).heartbeat is None and store.get(silent).status == QUEUED
    assert platform.reap(stale_after=None) == []     # without a limit, only this host's workers
