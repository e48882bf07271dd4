"""Course mode: prepare one folder of chapters per student, run them all, collect what they found.

* ``make``: a roster (CSV with a ``student`` column) and a grid (YAML: the profile, the chapters
  and, per chapter, the knobs to vary) give one folder per student holding the chapters with their
  parameters injected by papermill, and ``manifest.json`` saying who got what. Everything is
  checked before anything is written.
* ``run``: every prepared chapter without a valid record is executed, on a local process pool or
  as Ray tasks (:mod:`ai4m_helpers.executors`); finished runs are skipped, so a run can resume.
* ``collect``: the records (or the students' hand-ins) as one table, a figure per chapter of the
  main claim's effect against the varied knob, and a report a teacher can project.

A grid looks like::

    profile: smoke
    assign: round-robin        # or one-per-student, or random (with seed)
    seed: 0
    chapters:
      "07":
        seed: [0, 1, 2]
        rule_weight: {range: [0.1, 1.0, 4]}    # 4 values from 0.1 to 1.0

A list means "one of these"; ``{range: [start, stop, count]}`` means evenly spaced values; a
single value is given to everyone. A knob that itself takes a list is given as a list of lists.
"""
from __future__ import annotations

import ast
import csv
import dataclasses
import datetime as _dt
import itertools
import json
import pathlib
import re
from typing import Any, Sequence

import numpy as np

from .chapters import CHAPTERS, Chapter, find
from .params import PROFILES, ParameterError
from .results import code_version, load_record, parameters_digest

MANIFEST = "manifest.json"
ASSIGNMENTS = ("one-per-student", "round-robin", "random")
GRID_KEYS = {"profile", "assign", "seed", "chapters"}
SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
REPORT_DIR = "report"


@dataclasses.dataclass
class Task:
    """One chapter for one student: what an executor runs."""
    student: str
    chapter: Chapter
    parameters: dict
    folder: pathlib.Path
    threads: int = 1               # math-library threads of the run's kernel (its CPU share)

    @property
    def record_path(self) -> pathlib.Path:
        return self.folder / f"{self.chapter.name}.results.json"


# -- the roster and the grid ------------------------------------------------------------------------
def read_roster(path: str | pathlib.Path) -> list[dict]:
    """Rows of a CSV with a ``student`` column (ids usable as folder names, each once); other
    columns (name, group...) are kept."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise ParameterError(f"roster {path} is not a file")
    with open(path, newline="") as fh:
        rows = [{k.strip(): (v or "").strip() for k, v in row.items() if k} for row in csv.DictReader(fh)]
    if not rows or "student" not in rows[0]:
        raise ParameterError(f"roster {path} needs a 'student' column and at least one row")
    ids = [r["student"] for r in rows]
    bad = [i for i in ids if not SAFE_ID.match(i)]
    if bad:
        raise ParameterError(f"roster {path}: student ids must be letters, digits, '_', '.', '-': {bad[:3]}")
    twice = sorted({i for i in ids if ids.count(i) > 1})
    if twice:
        raise ParameterError(f"roster {path}: student(s) listed twice: {twice}")
    return rows


def read_grid(path: str | pathlib.Path) -> dict:
    import yaml

    path = pathlib.Path(path)
    if not path.is_file():
        raise ParameterError(f"grid {path} is not a file")
    try:
        grid = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ParameterError(f"grid {path} is not valid YAML: {str(err).splitlines()[0]}") from None
    return check_grid(grid, str(path))


def check_grid(grid: Any, where: str = "grid") -> dict:
    if not isinstance(grid, dict) or not isinstance(grid.get("chapters"), dict) or not grid["chapters"]:
        raise ParameterError(f"{where} needs a 'chapters' mapping with at least one chapter")
    unknown = set(grid) - GRID_KEYS
    if unknown:
        raise ParameterError(f"{where}: unknown key(s) {sorted(unknown)}; known: {sorted(GRID_KEYS)}")
    grid = {"profile": "smoke", "assign": "round-robin", "seed": 0, **grid}
    if grid["profile"] not in PROFILES:
        raise ParameterError(f"{where}: profile must be one of {PROFILES}, not {grid['profile']!r}")
    if grid["assign"] not in ASSIGNMENTS:
        raise ParameterError(f"{where}: assign must be one of {ASSIGNMENTS}, not {grid['assign']!r}")
    if not isinstance(grid["seed"], int) or isinstance(grid["seed"], bool):
        raise ParameterError(f"{where}: seed must be an integer")
    for name, knobs in grid["chapters"].items():
        if knobs is not None and not isinstance(knobs, dict):
            raise ParameterError(f"{where}: chapter {name!r} must map knob names to values")
    return grid


def _values(name: str, spec) -> list:
    """A grid entry as the list of values it stands for."""
    if isinstance(spec, dict):
        if set(spec) != {"range"} or not isinstance(spec["range"], list) or len(spec["range"]) != 3:
            raise ParameterError(f"knob {name!r}: a range is written {{range: [start, stop, count]}}")
        start, stop, count = spec["range"]
        if not isinstance(count, int) or count < 1:
            raise ParameterError(f"knob {name!r}: the count of a range must be a positive integer")
        return [float(v) for v in np.linspace(float(start), float(stop), count)]
    return list(spec) if isinstance(spec, list) else [spec]


def settings(chapter: Chapter, knobs: dict | None, profile: str) -> list[dict]:
    """Every combination of the knobs' values (the grid's cartesian product), each checked by the
    chapter's own parameter spec, joint constraints included."""
    spec = chapter.spec()
    knobs = dict(knobs or {})
    for reserved in ("profile", "results_path"):
        if reserved in knobs:
            raise ParameterError(f"chapter {chapter.number}: {reserved!r} is set by the course, not the grid")
    try:
        spec.check_names(knobs)
    except ParameterError as err:
        raise ParameterError(f"chapter {chapter.number}: {err}") from None
    names, choices = list(knobs), []
    for name in names:
        values = _values(name, knobs[name])
        if not values:
            raise ParameterError(f"chapter {chapter.number}: knob {name!r} has no values")
        checked = []
        for v in values:
            try:
                v = spec.coerce(name, v) if isinstance(v, str) else v
                spec.check_value(name, v)
            except ParameterError as err:
                raise ParameterError(f"chapter {chapter.number}: {err}") from None
            checked.append(v)
        choices.append(checked)
    combos = [dict(zip(names, combo)) for combo in itertools.product(*choices)]
    for combo in combos:
        try:
            spec.resolve(profile=profile, **combo)
        except ParameterError as err:
            raise ParameterError(f"chapter {chapter.number}, {combo}: {err}") from None
    return combos


def assign(students: Sequence[str], options: list[dict], how: str, seed: int) -> list[dict]:
    """One setting per student: in turn (round-robin), each a different one (one-per-student, which
    needs at least as many settings as students), or drawn with a seeded generator (random)."""
    if how == "round-robin":
        return [options[i % len(options)] for i in range(len(students))]
    if how == "one-per-student":
        if len(options) < len(students):
            raise ParameterError(f"one-per-student needs at least {len(students)} settings; the grid gives "
                                 f"{len(options)}")
        return options[:len(students)]
    rng = np.random.default_rng(seed)
    return [options[i] for i in rng.integers(0, len(options), len(students))]


def plan(roster: list[dict], grid: dict, chapters: Sequence[Chapter] = CHAPTERS) -> dict:
    """Who gets which parameters, per chapter; raises ParameterError before anything is written."""
    students = [r["student"] for r in roster]
    chosen = {}
    for i, (key, knobs) in enumerate(grid["chapters"].items()):
        try:
            (chapter,) = find([str(key)], chapters)
        except (KeyError, ValueError):
            raise ParameterError(f"grid names chapter {key!r}, which the book does not have") from None
        options = settings(chapter, knobs, grid["profile"])
        # each chapter draws from its own stream, so adding a chapter leaves the others' draws alone
        picks = assign(students, options, grid["assign"], grid["seed"] * 1000 + i)
        chosen[chapter.number] = (chapter, sorted(knobs or {}), picks)
    manifest = {"profile": grid["profile"], "assign": grid["assign"], "seed": grid["seed"],
                "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                "code": code_version(),
                "chapters": {n: {"name": c.name, "title": c.title, "varied": varied}
                             for n, (c, varied, _) in chosen.items()},
                "students": {}}
    for k, row in enumerate(roster):
        manifest["students"][row["student"]] = {
            "roster": row,
            "chapters": {n: {"parameters": {"profile": grid["profile"], **picks[k]},
                             "notebook": f"{row['student']}/{c.name}.ipynb"}
                         for n, (c, _, picks) in chosen.items()}}
    return manifest


# -- make -----------------------------------------------------------------------------------------
def make(roster_path, grid_path, out: pathlib.Path, chapters: Sequence[Chapter] = CHAPTERS,
         notebooks_dir: pathlib.Path | None = None) -> dict:
    """Check the roster and grid, then write a folder per student and the manifest."""
    import nbformat
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    roster, grid = read_roster(roster_path), read_grid(grid_path)
    out = pathlib.Path(out)
    if (out / MANIFEST).exists():
        raise ParameterError(f"{out} already holds a course ({MANIFEST}); choose another folder")
    manifest = plan(roster, grid, chapters)
    by_number = {c.number: c for c in chapters}
    for student, entry in manifest["students"].items():
        folder = out / student
        folder.mkdir(parents=True, exist_ok=True)
        for number, task in entry["chapters"].items():
            chapter = by_number[number]
            nb = load_notebook_node(str(chapter.notebook(notebooks_dir)))   # papermill's reader adds the tag lists
            params = {**task["parameters"], "results_path": f"{chapter.name}.results.json"}
            nb = parameterize_notebook(nb, params, report_mode=False)
            nbformat.write(nb, str(folder / f"{chapter.name}.ipynb"))
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def load_manifest(course: pathlib.Path) -> dict:
    path = pathlib.Path(course) / MANIFEST
    if not path.is_file():
        raise ParameterError(f"{course} holds no course ({MANIFEST} missing); make one with 'ai4m course make'")
    return json.loads(path.read_text())


def tasks(course: pathlib.Path, chapters: Sequence[Chapter] = CHAPTERS) -> list[Task]:
    manifest = load_manifest(course)
    by_number = {c.number: c for c in chapters}
    return [Task(student, by_number[number], t["parameters"], pathlib.Path(course) / student)
            for student, entry in manifest["students"].items() for number, t in entry["chapters"].items()]


def is_complete(task: Task) -> bool:
    """A valid record whose parameters are the ones assigned (so a changed grid is run again)."""
    try:
        record = load_record(task.record_path)
    except (OSError, ValueError):
        return False
    return all(record["parameters"].get(k) == v for k, v in task.parameters.items())


# -- run ------------------------------------------------------------------------------------------
def run(course: pathlib.Path, executor: str = "local", jobs: int = 1, address: str | None = None,
        chapters: Sequence[Chapter] = CHAPTERS, cpus_per_run: float = 1.0, gpus_per_run: float = 0.0,
        log=print) -> list[dict]:
    """Run every task without a valid record; returns the runner's entries of this call."""
    from . import executors

    todo = [dataclasses.replace(t, threads=max(1, int(cpus_per_run)))
            for t in tasks(course, chapters) if not is_complete(t)]
    done = len(tasks(course, chapters)) - len(todo)
    log(f"{len(todo)} run(s) to do, {done} already complete; executor {executor}, {jobs} at a time")
    if not todo:
        return []
    return executors.execute(todo, executor, jobs, address=address, cpus_per_run=cpus_per_run,
                             gpus_per_run=gpus_per_run, log=log)


# -- collect --------------------------------------------------------------------------------------
def notebook_parameters(path: pathlib.Path) -> dict:
    """The literal values assigned in a notebook's parameter cells (the chapter's defaults, then
    the ones papermill injected, which win)."""
    import nbformat

    values = {}
    nb = nbformat.read(str(path), as_version=4)
    for cell in nb.cells:
        tags = cell.get("metadata", {}).get("tags", [])
        if cell.cell_type != "code" or not {"parameters", "injected-parameters"} & set(tags):
            continue
        for node in ast.parse(cell.source).body:
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                try:
                    values[node.targets[0].id] = ast.literal_eval(node.value)
                except ValueError:
                    pass
    return values


def check_handin(record: dict, notebook: pathlib.Path | None) -> str | None:
    """Why a handed-in record cannot be accepted, or None: its parameters must hash to the digest
    written at run time, and the executed notebook's parameter cells must say the same."""
    digest = record.get("parameters_sha256")
    if not digest:
        return "the record carries no parameter digest (made by an older version?)"
    if parameters_digest(record["parameters"]) != digest:
        return "the record's parameters were edited after the run"
    if notebook is not None and notebook.exists():
        cell = notebook_parameters(notebook)
        edited = sorted(k for k, v in cell.items()
                        if k in record["parameters"] and v is not None and v != record["parameters"][k])
        if edited:
            return f"the notebook's parameters differ from the record's: {edited}"
    return None


def _main_claim(record: dict) -> tuple[str | None, float | None]:
    """The first claim with a numeric effect (a combined claim's first such part)."""
    def walk(claims):
        for c in claims:
            if isinstance(c.get("effect"), (int, float)):
                return c
            found = walk(c.get("parts", []))
            if found:
                return found
        return None

    claim = walk(record.get("claims", []))
    return (claim["name"], float(claim["effect"])) if claim else (None, None)


def _row(student: str, number: str, manifest: dict, record: dict | None, status: str) -> dict:
    assigned = manifest["students"][student]["chapters"][number]["parameters"]
    varied = manifest["chapters"][number]["varied"]
    row = {"student": student, "chapter": number, "status": status,
           **{k: assigned.get(k) for k in varied}}
    if record:
        name, effect = _main_claim(record)
        row.update({"main claim": name, "effect": effect, "time_s": record["timings_s"].get("total"),
                    "verdicts": ", ".join(f"{c['verdict']}" for c in record["claims"])})
    return row


def collect(course: pathlib.Path, handins: pathlib.Path | None = None,
            chapters: Sequence[Chapter] = CHAPTERS):
    """One row per student and chapter: the assigned knobs, status, main claim's effect, verdicts.
    Records come from the course folder, or from ``handins`` (a folder per student) after the
    tamper check. Writes ``report/`` (table, figures, Markdown and HTML) and returns the table."""
    import pandas as pd

    course = pathlib.Path(course)
    manifest = load_manifest(course)
    source = pathlib.Path(handins) if handins else course
    if handins and not source.is_dir():
        raise ParameterError(f"--handins {source} is not a folder")
    rows = []
    for task in tasks(course, chapters):
        record_path = source / task.student / task.record_path.name
        status, record = "not run", None
        if record_path.exists():
            try:
                record = load_record(record_path)
            except ValueError as err:
                status = f"refused: unreadable record ({err})"
            else:
                problem = check_handin(record, record_path.with_name(f"{task.chapter.name}.ipynb")) if handins \
                    else None
                if problem:
                    status, record = f"refused: {problem}", None
                elif any(record["parameters"].get(k) != v for k, v in task.parameters.items()):
                    status, record = "refused: not the assigned parameters", None
                else:
                    status = "ok"
        elif _failed(course / task.student, task.chapter):
            status = "failed"
        rows.append(_row(task.student, task.chapter.number, manifest, record, status))
    table = pd.DataFrame(rows)
    report(table, manifest, course / REPORT_DIR)
    return table


def _failed(folder: pathlib.Path, chapter: Chapter) -> bool:
    path = folder / "summary.json"
    if not path.exists():
        return False
    entries = json.loads(path.read_text()).get("chapters", {})
    return entries.get(chapter.name, {}).get("status") == "failed"


def report(table, manifest: dict, out: pathlib.Path) -> pathlib.Path:
    """``table.csv``, a figure per chapter and ``report.md`` / ``report.html`` in ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "table.csv", index=False)
    lines = [f"# Course report ({manifest['profile']} profile, {len(manifest['students'])} students)", ""]
    for number, info in manifest["chapters"].items():
        part = table[table["chapter"] == number]
        lines += [f"## {number} — {info['title']}", ""]
        ok = part[part["status"] == "ok"]
        lines.append(f"{len(ok)} of {len(part)} runs complete.")
        flagged = part[part["status"] != "ok"]
        if len(flagged):
            lines.append("Flagged: " + "; ".join(f"{r.student} ({r.status})" for r in flagged.itertuples()))
        if len(ok) and info["varied"] and "effect" in ok and ok["effect"].notna().any():
            x = info["varied"][0]
            fig, ax = plt.subplots(figsize=(4.5, 3))
            ax.scatter([str(v) if not isinstance(v, (int, float)) else v for v in ok[x]], ok["effect"])
            ax.set_xlabel(x)
            ax.set_ylabel("effect of the main claim")
            ax.set_title(str(ok["main claim"].iloc[0])[:60], fontsize=8)
            fig.tight_layout()
            fig.savefig(out / f"{number}.png", dpi=100)
            plt.close(fig)
            lines += ["", f"![{number}]({number}.png)"]
        lines += ["", part.drop(columns="chapter").to_markdown(index=False), ""]
    text = "\n".join(lines) + "\n"
    (out / "report.md").write_text(text)
    (out / "report.html").write_text(_html(text))
    return out / "report.md"


def _html(markdown_text: str) -> str:
    """The report as a self-contained HTML page (markdown-it ships with the book's tools)."""
    try:
        from markdown_it import MarkdownIt

        body = MarkdownIt().enable("table").render(markdown_text)
    except ImportError:   # plain text, still readable
        import html

        body = f"<pre>{html.escape(markdown_text)}</pre>"
    return f"<!doctype html><meta charset='utf-8'><title>Course report</title>\n{body}"
