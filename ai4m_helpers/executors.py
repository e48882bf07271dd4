"""Where course runs execute: a process pool on this machine, or Ray tasks (a local Ray instance, or
a cluster given by its address). Either way each run is one papermill execution
(:func:`ai4m_helpers.runner.run_chapter`) in its own process; its entry comes back to this
process, which alone writes the summaries, so two runs never write the same file.

A run whose worker dies (a killed process, a lost node) is run again, at most ``retries`` times;
its old record was removed when it started, so the record appears once. A chapter that fails
inside its notebook is not retried: that is a result, reported as such. Any other error of one
run becomes that run's failure and the others go on.

On a Ray cluster every node must see the course folder at the same path (a shared file system):
workers read the prepared notebooks and write the records there.
"""
from __future__ import annotations

import concurrent.futures as cf
import contextlib
import datetime as _dt
import os
import pathlib
import time
from typing import Callable, Sequence

from .params import ParameterError

EXECUTORS = ("local", "ray")
RETRIES = 2
LOCK = ".course-run.lock"
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def run_task(task) -> dict:
    """Execute one course task; the entry the runner would write for it (runs in a worker). The
    executed notebook and its record go to the student's ``runs/`` folder. The kernel gets as many
    math-library threads as the run has CPUs: runs side by side that each took every core would
    slow one another down many times over."""
    from .runner import run_chapter

    os.environ.setdefault("MPLBACKEND", "Agg")
    for name in THREAD_VARIABLES:
        os.environ[name] = str(task.threads)
    task.run_dir.mkdir(parents=True, exist_ok=True)
    entry = run_chapter(task.chapter, task.parameters, task.run_dir, notebooks_dir=task.folder)
    entry["student"] = task.student
    return entry


@contextlib.contextmanager
def course_lock(course: pathlib.Path):
    """One ``course run`` at a time per course folder: two would run the same notebooks."""
    path = pathlib.Path(course) / LOCK
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        raise ParameterError(f"another 'course run' is working on {course} (remove {path} if it was "
                             f"interrupted)") from None
    os.write(fd, f"{os.getpid()} {_dt.datetime.now().isoformat(timespec='seconds')}\n".encode())
    os.close(fd)
    try:
        yield
    finally:
        path.unlink(missing_ok=True)


def execute(todo: Sequence, executor: str, jobs: int, address: str | None = None, cpus_per_run: float = 1.0,
            gpus_per_run: float = 0.0, log=print, work: Callable = run_task, retries: int = RETRIES) -> list[dict]:
    """Run ``todo`` (course tasks) and write each entry into its folder's summary as it arrives."""
    if executor not in EXECUTORS:
        raise ParameterError(f"executor must be one of {EXECUTORS}, not {executor!r}")
    if jobs < 1:
        raise ParameterError("jobs must be at least 1")
    start = time.perf_counter()
    progress = _Progress(len(todo), log)
    if executor == "local":
        entries = _local(todo, jobs, work, retries, progress.done)
    else:
        entries = _ray(todo, jobs, address, cpus_per_run, gpus_per_run, work, retries, progress.done)
    log(f"{len(entries)} run(s) in {time.perf_counter() - start:.1f} s "
        f"({sum(e['status'] == 'ok' for e in entries)} ok)")
    return entries


class _Progress:
    """A tqdm bar in a terminal, a line per finished run otherwise; writes the run's summary."""

    def __init__(self, total: int, log):
        import sys

        from tqdm import tqdm

        self.bar = tqdm(total=total, desc="course runs", unit="run") if sys.stderr.isatty() else None
        self.log, self.count, self.total = log, 0, total

    def done(self, task, entry: dict) -> None:
        from .runner import describe_entry, update_summary

        update_summary(task.run_dir, [entry])
        self.count += 1
        if self.bar is not None:
            self.bar.update()
        else:
            self.log(f"[{self.count}/{self.total}] {task.student} {task.chapter.number}: {describe_entry(entry)}")


def failed_entry(task, ename: str, evalue: str) -> dict:
    """A complete runner entry for a run that ended outside its notebook."""
    profile = task.parameters.get("profile", "smoke")
    return {"chapter": task.chapter.number, "name": task.chapter.name, "title": task.chapter.title,
            "student": task.student, "profile": profile, "parameters": task.parameters,
            "notebook": f"{task.chapter.name}.ipynb", "budget_s": task.chapter.budget_s.get(profile),
            "started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "status": "failed", "wall_s": 0.0, "error": {"cell": None, "ename": ename, "evalue": evalue}}


def _local(todo, jobs: int, work: Callable, retries: int, done: Callable) -> list[dict]:
    """A process pool with at most ``jobs`` runs in flight. A dead worker breaks the pool and every
    run in flight with it, and nothing tells which run killed it: those runs are then run one at a
    time, each in a pool of its own, where a death is the run's own and counts against its
    ``retries``. Runs not in flight when a pool breaks are not charged."""
    entries, attempts, queue, suspects = [], {id(t): 0 for t in todo}, list(todo), []
    while queue or suspects:
        alone = bool(suspects)
        batch = [suspects.pop(0)] if alone else queue
        for task in _pool_round(batch, 1 if alone else jobs, work, entries, done):
            if not alone:
                suspects.append(task)
                continue
            attempts[id(task)] += 1
            if attempts[id(task)] <= retries:
                suspects.append(task)
            else:
                entry = failed_entry(task, "WorkerLost", f"its worker died {attempts[id(task)]} times")
                entries.append(entry)
                done(task, entry)
    return entries


def _pool_round(queue: list, width: int, work: Callable, entries: list, done: Callable) -> list:
    """Run tasks from ``queue`` (consumed) in one pool until it is empty or the pool breaks;
    returns the tasks that were in flight when it broke."""
    lost = []
    with cf.ProcessPoolExecutor(max_workers=width) as pool:
        running = {}
        try:
            while running or (queue and not lost):
                while queue and not lost and len(running) < width:
                    try:
                        running[pool.submit(work, queue[0])] = queue[0]
                    except cf.process.BrokenProcessPool:
                        break                           # a worker died since the last wait
                    queue.pop(0)
                if not running:
                    break
                finished, _ = cf.wait(running, return_when=cf.FIRST_COMPLETED)
                for future in finished:
                    task = running.pop(future)
                    try:
                        entry = future.result()
                    except cf.process.BrokenProcessPool:
                        lost.append(task)
                        continue
                    except Exception as err:           # the run failed outside its notebook
                        entry = failed_entry(task, type(err).__name__, str(err))
                    entries.append(entry)
                    done(task, entry)
        except KeyboardInterrupt:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    return lost


def _ray(todo, jobs: int, address: str | None, cpus: float, gpus: float, work: Callable, retries: int,
         done: Callable) -> list[dict]:
    """Each run a Ray task with its CPU/GPU request; Ray itself re-runs a task whose worker or node
    died (``max_retries``). Without an address, a local Ray instance with ``jobs`` CPUs."""
    try:
        import ray
    except ImportError:
        raise ParameterError("the Ray executor needs Ray: pip install 'ai4m-helpers[course]'") from None

    started_here = not ray.is_initialized()
    if started_here:
        kwargs = {"address": address} if address else {"num_cpus": jobs * cpus, "include_dashboard": False}
        try:
            ray.init(log_to_driver=False, configure_logging=False, **kwargs)
        except (ConnectionError, RuntimeError, ValueError) as err:
            raise ParameterError(f"cannot start or reach Ray{f' at {address}' if address else ''}: {err}") from None
    try:
        available = ray.cluster_resources()
        if gpus > available.get("GPU", 0) or cpus > available.get("CPU", 0):
            raise ParameterError(f"each run asks for {cpus} CPU and {gpus} GPU; the Ray cluster has "
                                 f"{available.get('CPU', 0)} CPU and {available.get('GPU', 0)} GPU")
        remote = ray.remote(num_cpus=cpus, num_gpus=gpus, max_retries=retries)(work)
        refs = {remote.remote(t): t for t in todo}
        entries, waiting = [], list(refs)
        while waiting:
            ready, waiting = ray.wait(waiting, num_returns=1)
            task = refs[ready[0]]
            try:
                entry = ray.get(ready[0])
            except ray.exceptions.RayError as err:    # worker or node lost beyond the retries, memory...
                entry = failed_entry(task, type(err).__name__, str(err).splitlines()[0] if str(err) else "")
            entries.append(entry)
            done(task, entry)
        return entries
    finally:
        if started_here:
            ray.shutdown()
