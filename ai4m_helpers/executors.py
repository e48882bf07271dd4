"""Where course runs execute: a process pool on this machine, or Ray tasks (a local Ray instance, or
a cluster given by its address). Either way each run is one papermill execution
(:func:`ai4m_helpers.runner.run_chapter`) in its own process, its entry comes back to this
process, which alone writes the summaries, so two runs never write the same file.

A run whose worker dies (a killed process, a lost node) is run again, at most ``retries`` times;
its old record was removed when it started, so the record appears once. A chapter that fails
inside its notebook is not retried: that is a result, reported as such.
"""
from __future__ import annotations

import concurrent.futures as cf
import os
import pathlib
import time
from typing import Callable, Sequence

EXECUTORS = ("local", "ray")
RETRIES = 2


THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def run_task(task) -> dict:
    """Execute one course task; the entry the runner would write for it (runs in a worker). The
    kernel gets as many math-library threads as the run has CPUs: runs side by side that each
    took every core would slow one another down many times over."""
    from .runner import run_chapter

    os.environ.setdefault("MPLBACKEND", "Agg")
    for name in THREAD_VARIABLES:
        os.environ[name] = str(task.threads)
    entry = run_chapter(task.chapter, task.parameters, task.folder, notebooks_dir=task.folder)
    entry["student"] = task.student
    return entry


def execute(todo: Sequence, executor: str, jobs: int, address: str | None = None, cpus_per_run: float = 1.0,
            gpus_per_run: float = 0.0, log=print, work: Callable = run_task, retries: int = RETRIES) -> list[dict]:
    """Run ``todo`` (course tasks) and write each entry into its folder's summary as it arrives."""
    if executor not in EXECUTORS:
        raise ValueError(f"executor must be one of {EXECUTORS}, not {executor!r}")
    if jobs < 1:
        raise ValueError("jobs must be at least 1")
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

        update_summary(pathlib.Path(task.folder), [entry])
        self.count += 1
        if self.bar is not None:
            self.bar.update()
        else:
            self.log(f"[{self.count}/{self.total}] {task.student} {task.chapter.number}: {describe_entry(entry)}")


def _lost(task, err: BaseException) -> dict:
    return {"chapter": task.chapter.number, "name": task.chapter.name, "title": task.chapter.title,
            "student": task.student, "status": "failed", "wall_s": 0.0,
            "error": {"cell": None, "ename": "WorkerLost", "evalue": f"the worker running it died: {err}"}}


def _local(todo, jobs: int, work: Callable, retries: int, done: Callable) -> list[dict]:
    """A process pool; when a worker dies the pool is broken, so the unfinished runs go to a new
    pool, each at most ``retries`` more times."""
    entries, attempts, pending = [], {id(t): 0 for t in todo}, list(todo)
    while pending:
        broken = []
        with cf.ProcessPoolExecutor(max_workers=jobs) as pool:
            futures = {pool.submit(work, t): t for t in pending}
            for future in cf.as_completed(futures):
                task = futures[future]
                try:
                    entry = future.result()
                except cf.process.BrokenProcessPool as err:
                    attempts[id(task)] += 1
                    if attempts[id(task)] > retries:
                        entry = _lost(task, err)
                    else:
                        broken.append(task)
                        continue
                entries.append(entry)
                done(task, entry)
        pending = broken
    return entries


def _ray(todo, jobs: int, address: str | None, cpus: float, gpus: float, work: Callable, retries: int,
         done: Callable) -> list[dict]:
    """Each run a Ray task with its CPU/GPU request; Ray itself re-runs a task whose worker or node
    died (``max_retries``). Without an address, a local Ray instance with ``jobs`` CPUs."""
    import ray

    started_here = not ray.is_initialized()
    if started_here:
        kwargs = {"address": address} if address else {"num_cpus": jobs * cpus, "include_dashboard": False}
        ray.init(log_to_driver=False, configure_logging=False, **kwargs)
    try:
        remote = ray.remote(num_cpus=cpus, num_gpus=gpus, max_retries=retries)(work)
        refs = {remote.remote(t): t for t in todo}
        entries, waiting = [], list(refs)
        while waiting:
            ready, waiting = ray.wait(waiting, num_returns=1)
            task = refs[ready[0]]
            try:
                entry = ray.get(ready[0])
            except (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError) as err:
                entry = _lost(task, err)
            entries.append(entry)
            done(task, entry)
        return entries
    finally:
        if started_here:
            ray.shutdown()
