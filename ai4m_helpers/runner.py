"""Run chapters with papermill: validate parameters first, one results record per chapter, and a
summary that keeps the records of chapters not run this time."""
from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import pathlib
import sys
import tempfile
import threading
import time
from typing import Any, Iterable, Sequence

from .chapters import Chapter
from .claims import MARKDOWN_HEADER, claims_markdown, tally
from .params import ParameterError, ParamSpec
from .results import load_record

SUMMARY_JSON = "summary.json"
# Set for the kernels the runner starts: nobody watches them, so no progress bars and no live widgets.
BATCH_ENV = "AI4M_BATCH"
SUMMARY_MD = "summary.md"


def parse_overrides(raw: Iterable[tuple[str, str]], chapters: Sequence[Chapter]) -> dict[str, dict]:
    """Turn ``-p name value`` pairs into checked values per chapter.

    ``name`` applies to every selected chapter and must be known to each of them;
    ``01:name`` (or ``slug:name``) applies to that chapter only. Raises ParameterError.
    """
    per_chapter: dict[str, dict[str, Any]] = {c.name: {} for c in chapters}
    specs = {c.name: c.spec() for c in chapters}
    for key, text in raw:
        scope, _, name = key.rpartition(":")
        targets = [c for c in chapters if not scope or scope in (c.number, c.slug, c.name)]
        if scope and not targets:
            raise ParameterError(f"{key!r} names chapter {scope!r}, which is not being run")
        for chapter in targets:
            spec = specs[chapter.name]
            try:
                value = spec.coerce(name, text)
                spec.check_value(name, value)
            except ParameterError as err:
                where = f"chapter {chapter.number}: " if len(chapters) > 1 else ""
                hint = (f" (scope it to one chapter as 'NN:{name}')"
                        if not scope and len(chapters) > 1 and name not in spec.params else "")
                raise ParameterError(f"{where}{err}{hint}") from None
            per_chapter[chapter.name][name] = value
    return per_chapter


def check_out_dir(out: pathlib.Path) -> pathlib.Path:
    """The folder runs are written to, or ParameterError if it cannot be one: a file, a path
    below a file, or a place this user may not write. Nothing is created here."""
    out = pathlib.Path(out).expanduser().resolve()
    if out.exists() and not out.is_dir():
        raise ParameterError(f"--out {out} is a file, not a folder")
    existing = next(p for p in (out, *out.parents) if p.exists())
    if not existing.is_dir():
        raise ParameterError(f"--out {out} lies below {existing}, which is a file")
    try:   # a real write, since permission bits do not tell the whole story (root, read-only mounts)
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as err:
        raise ParameterError(f"--out {out}: cannot write in {existing} ({err.strerror})") from None
    return out


def check_all(chapters: Sequence[Chapter], profile: str, overrides: dict[str, dict]) -> None:
    """Resolve every chapter's full parameter set now, so joint checks fail before any work."""
    for chapter in chapters:
        try:
            chapter.spec().resolve(**{"profile": profile, **overrides.get(chapter.name, {})})
        except ParameterError as err:
            prefix = f"chapter {chapter.number}: " if len(chapters) > 1 else ""
            raise ParameterError(f"{prefix}{err}") from None


def run_chapter(chapter: Chapter, parameters: dict[str, Any], out_dir: pathlib.Path,
                notebooks_dir: pathlib.Path | None = None, cell_timeout: int | None = None,
                progress: bool = False) -> dict[str, Any]:
    """Execute one chapter; returns its summary entry (status, time, claims or the failing cell)."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    source = chapter.notebook(notebooks_dir)
    executed = out_dir / f"{chapter.name}.ipynb"
    record_path = out_dir / f"{chapter.name}.results.json"
    record_path.unlink(missing_ok=True)  # a stale record must never stand for this run
    # The kernel runs in the output folder and writes its record there under a bare file name, so
    # an executed notebook carries no path of this machine, and re-running a download writes the
    # record beside it.
    params = {**parameters, "results_path": record_path.name}
    entry: dict[str, Any] = {"chapter": chapter.number, "name": chapter.name, "title": chapter.title,
                             "profile": params.get("profile", "smoke"), "parameters": parameters,
                             "notebook": executed.name,
                             "budget_s": chapter.budget_s.get(params.get("profile", "smoke")),
                             "started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    start = time.perf_counter()
    os.environ[BATCH_ENV] = "1"   # read by the kernel (chapter.batch_run)
    try:
        _execute(papermill, source, executed, params, out_dir, cell_timeout, progress)
    except PapermillExecutionError as err:
        entry.update(status="failed", error={"cell": err.cell_index, "exec_count": err.exec_count,
                                             "ename": err.ename, "evalue": err.evalue})
    except Exception as err:  # kernel died, notebook unreadable, timeout...
        entry.update(status="failed", error={"cell": None, "ename": type(err).__name__,
                                             "evalue": str(err)})
    else:
        entry["status"] = "ok"
    entry["wall_s"] = round(time.perf_counter() - start, 2)
    _drop_machine_paths(executed)
    if entry["status"] == "ok":
        _attach_record(entry, record_path)
    return entry


# jupyter_client picks a kernel's ports before the kernel binds them, so a kernel started beside
# others can lose its port and die before it answers; nothing has run yet, so starting again is safe.
KERNEL_START_FAILURE = "Kernel died before replying to kernel_info"
KERNEL_STARTS = 3


def _execute(papermill, source, executed, params, out_dir, cell_timeout, progress) -> None:
    for attempt in range(1, KERNEL_STARTS + 1):
        try:
            papermill.execute_notebook(str(source), str(executed), parameters=params,
                                       cwd=str(out_dir.resolve()), progress_bar=progress,
                                       execution_timeout=cell_timeout, kernel_name="python3",
                                       # the kernel's start-up warnings are noise for a reader
                                       extra_arguments=["--IPKernelApp.log_level=ERROR"])
            return
        except RuntimeError as err:
            if KERNEL_START_FAILURE not in str(err) or attempt == KERNEL_STARTS:
                raise


def _drop_machine_paths(executed: pathlib.Path) -> None:
    """Papermill notes where it read and wrote the notebook; keep the file names only, so a
    downloaded notebook says nothing about the machine that ran it."""
    if not executed.exists():
        return
    nb = json.loads(executed.read_text())
    meta = nb.get("metadata", {}).get("papermill", {})
    for key in ("input_path", "output_path"):
        if meta.get(key):
            meta[key] = pathlib.Path(meta[key]).name
    executed.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")


def _attach_record(entry: dict[str, Any], record_path: pathlib.Path) -> None:
    if not record_path.exists():
        entry.update(status="failed", error={"cell": None, "ename": "NoResultsRecord",
                                             "evalue": "the notebook ran but wrote no results record"})
        return
    record = load_record(record_path)
    entry.update(results=record_path.name, device=record["device"],
                 timings_s=record["timings_s"], claims=record["claims"])


def run(chapters: Sequence[Chapter], profile: str, overrides: dict[str, dict], out_dir: pathlib.Path,
        keep_going: bool = False, notebooks_dir: pathlib.Path | None = None,
        cell_timeout: int | None = None, log=print) -> list[dict[str, Any]]:
    """Run the chapters in order; the summary in ``out_dir`` is updated after each one."""
    out_dir.mkdir(parents=True, exist_ok=True)
    entries = []
    for i, chapter in enumerate(chapters, 1):
        params = {"profile": profile, **overrides.get(chapter.name, {})}
        log(f"[{i}/{len(chapters)}] chapter {chapter.number} ({chapter.slug}), profile {profile} ...")
        interactive = sys.stderr.isatty()  # a terminal shows papermill's cell bar; logs get a heartbeat
        with contextlib.nullcontext() if interactive else heartbeat(log, chapter.number):
            entry = run_chapter(chapter, params, out_dir, notebooks_dir, cell_timeout, progress=interactive)
        entries.append(entry)
        update_summary(out_dir, [entry])
        log("    " + describe_entry(entry))
        if entry["status"] != "ok" and not keep_going:
            skipped = [c.number for c in chapters[i:]]
            if skipped:
                log(f"    stopping (use --keep-going to run the rest); not run: {', '.join(skipped)}")
            break
    return entries


@contextlib.contextmanager
def heartbeat(log, label: str, every_s: float = 30.0):
    """Log the elapsed time every ``every_s`` seconds while the block runs."""
    stop = threading.Event()
    start = time.perf_counter()

    def beat():
        while not stop.wait(every_s):
            log(f"    ... chapter {label} still running, {time.perf_counter() - start:.0f} s")

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def describe_entry(entry: dict[str, Any]) -> str:
    if entry["status"] == "ok":
        over = entry["budget_s"] is not None and entry["wall_s"] > entry["budget_s"]
        budget = f" (over its {entry['budget_s']} s budget)" if over else ""
        return (f"ok in {entry['wall_s']:.1f} s{budget}; claims: {tally(entry.get('claims', []))}"
                f"; device {entry.get('device')}")
    err = entry["error"]
    cell = f"cell {err['cell']}" if err.get("cell") is not None else "outside any cell"
    return f"FAILED after {entry['wall_s']:.1f} s at {cell}: {err['ename']}: {err['evalue']}"


# -- the summary ------------------------------------------------------------------------------
def load_summary(out_dir: pathlib.Path) -> dict[str, Any]:
    path = out_dir / SUMMARY_JSON
    if path.exists():
        return json.loads(path.read_text())
    return {"chapters": {}}


def update_summary(out_dir: pathlib.Path, entries: list[dict[str, Any]]) -> dict[str, Any]:
    """Merge entries into the summary; chapters not in ``entries`` keep what they had."""
    summary = load_summary(out_dir)
    for entry in entries:
        summary["chapters"][entry["name"]] = entry
    summary["chapters"] = dict(sorted(summary["chapters"].items()))
    summary["updated"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    (out_dir / SUMMARY_JSON).write_text(json.dumps(summary, indent=2) + "\n")
    (out_dir / SUMMARY_MD).write_text(summary_markdown(summary))
    return summary


def summary_markdown(summary: dict[str, Any]) -> str:
    lines = [f"Summary of the runs in this folder, last updated {summary.get('updated', '?')} (UTC).", "",
             "| chapter | profile | status | time (s) | budget (s) | claims | device |",
             "|---|---|---|---|---|---|---|"]
    for entry in summary["chapters"].values():
        verdicts = tally(entry.get("claims", [])) if entry["status"] == "ok" else "–"
        lines.append(f"| {entry['chapter']} — {entry['title']} | {entry['profile']} | {entry['status']} "
                     f"| {entry['wall_s']:.1f} | {entry['budget_s']} | {verdicts} | {entry.get('device', '–')} |")
    text = "\n".join(lines) + "\n"
    rows = "".join(claims_markdown(entry.get("claims", []), entry["chapter"], header=False)
                   for entry in summary["chapters"].values())
    if rows:
        text += "\n" + MARKDOWN_HEADER + rows
    return text


def check_parameter_cell(chapter: Chapter, spec: ParamSpec, notebooks_dir=None) -> list[str]:
    """Problems with a notebook's parameters cell against its spec (names missing or extra)."""
    import papermill

    declared = set(papermill.inspect_notebook(str(chapter.notebook(notebooks_dir))))
    problems = [f"parameters cell lacks {n!r}" for n in spec.names() if n not in declared]
    problems += [f"parameters cell has {n!r}, which the spec does not know"
                 for n in sorted(declared - set(spec.names()))]
    return problems
