"""Course mode: prepare one folder of chapters per student, run them all, collect what they found.

* ``make``: a roster (CSV with a ``student`` column) and a grid (YAML: the profile, the chapters
  and, per chapter, the knobs to vary) give one folder per student holding the chapters with their
  parameters injected by papermill, and ``manifest.json`` saying who got what. Everything is
  checked before anything is written.
* ``run``: every prepared chapter without a valid record is executed, on a local process pool or
  as Ray tasks (:mod:`ai4m_helpers.executors`); the executed notebook and its record go to the
  student's ``runs/`` folder, so the prepared notebook stays as handed out, and finished runs are
  skipped, so a run can resume.
* ``collect`` (:mod:`ai4m_helpers.course_report`): the records, or the students' hand-ins, as one
  table, a figure per chapter and a report a teacher can project.

A grid looks like::

    profile: smoke
    assign: round-robin        # or one-per-student, or random (with seed)
    seed: 0
    chapters:
      "07":
        seed: [0, 1, 2]
        kal_mu: {range: [0.5, 2.0, 4]}    # 4 values from 0.5 to 2.0

A list means "one of these"; ``{range: [start, stop, count]}`` means evenly spaced values (whole
numbers for an integer knob); a single value is given to everyone. A knob that itself takes a
list is given as a list of lists.
"""
from __future__ import annotations

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
from .results import code_version, load_record

MANIFEST = "manifest.json"
RUNS = "runs"                       # a student's executed notebooks and records (teacher's runs)
REPORT_DIR = "report"
ASSIGNMENTS = ("one-per-student", "round-robin", "random")
GRID_KEYS = {"profile", "assign", "seed", "chapters"}
SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
RESERVED_IDS = {REPORT_DIR, MANIFEST, RUNS}


@dataclasses.dataclass
class Task:
    """One chapter for one student: what an executor runs."""
    student: str
    chapter: Chapter
    parameters: dict
    folder: pathlib.Path           # the student's folder (absolute: Ray workers do not share our cwd)
    threads: int = 1               # math-library threads of the run's kernel (its CPU share)

    @property
    def run_dir(self) -> pathlib.Path:
        return self.folder / RUNS

    @property
    def record_path(self) -> pathlib.Path:
        return self.run_dir / f"{self.chapter.name}.results.json"


# -- the roster and the grid ------------------------------------------------------------------------
def read_roster(path: str | pathlib.Path) -> list[dict]:
    """Rows of a CSV with a ``student`` column (ids usable as folder names, each once, whatever
    the case); other columns (name, group...) are kept. A byte-order mark (Excel) is fine."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise ParameterError(f"roster {path} is not a file")
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            rows = [{k.strip(): (v or "").strip() for k, v in row.items() if k} for row in csv.DictReader(fh)]
    except UnicodeDecodeError:
        raise ParameterError(f"roster {path} is not UTF-8 text; save it as 'CSV UTF-8'") from None
    if not rows or "student" not in rows[0]:
        raise ParameterError(f"roster {path} needs a 'student' column and at least one row")
    ids = [r["student"] for r in rows]
    bad = [i for i in ids if not SAFE_ID.match(i) or i.lower() in RESERVED_IDS]
    if bad:
        raise ParameterError(f"roster {path}: student ids must be letters, digits, '_', '.', '-' and not one of "
                             f"{sorted(RESERVED_IDS)}: {bad[:3]}")
    lowered = [i.lower() for i in ids]
    twice = sorted({i for i in ids if lowered.count(i.lower()) > 1})
    if twice:
        raise ParameterError(f"roster {path}: student(s) listed twice (letter case aside): {twice}")
    return rows


def read_grid(path: str | pathlib.Path) -> dict:
    import yaml

    path = pathlib.Path(path)
    if not path.is_file():
        raise ParameterError(f"grid {path} is not a file")
    try:
        grid = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as err:
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
    if not isinstance(grid["seed"], int) or isinstance(grid["seed"], bool) or grid["seed"] < 0:
        raise ParameterError(f"{where}: seed must be a whole number >= 0")
    for name, knobs in grid["chapters"].items():
        if knobs is not None and not isinstance(knobs, dict):
            raise ParameterError(f"{where}: chapter {name!r} must map knob names to values")
    return grid


def _range(name: str, spec: dict, kind: type) -> list:
    """``{range: [start, stop, count]}`` as values of the knob's type."""
    if set(spec) != {"range"} or not isinstance(spec["range"], list) or len(spec["range"]) != 3:
        raise ParameterError(f"knob {name!r}: a range is written {{range: [start, stop, count]}}")
    start, stop, count = spec["range"]
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise ParameterError(f"knob {name!r}: the count of a range must be a positive whole number")
    try:
        values = np.linspace(float(start), float(stop), count)
    except (TypeError, ValueError):
        raise ParameterError(f"knob {name!r}: a range needs numbers, got {start!r} and {stop!r}") from None
    if kind is int:
        if not np.allclose(values, np.round(values)):
            raise ParameterError(f"knob {name!r} takes whole numbers; {spec['range']} gives {values.tolist()}")
        return [int(round(v)) for v in values]
    return [float(v) for v in values]


def _values(name: str, spec, kind: type = float) -> list:
    """A grid entry as the list of values it stands for."""
    if isinstance(spec, dict):
        return _range(name, spec, kind)
    return list(spec) if isinstance(spec, list) else [spec]


def settings(chapter: Chapter, knobs: dict | None, profile: str) -> tuple[list[dict], list[str]]:
    """Every combination of the knobs' values (the grid's cartesian product, the values of each knob
    interleaved so that a prefix of it covers every value), each checked by the chapter's own
    parameter spec, joint constraints included; and the knobs that take more than one value."""
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
        values = _values(name, knobs[name], spec.params[name].type)
        if not values:
            raise ParameterError(f"chapter {chapter.number}: knob {name!r} has no values")
        checked = []
        for v in values:
            try:
                checked.append(spec.check_value(name, spec.coerce(name, v) if isinstance(v, str) else v))
            except ParameterError as err:
                raise ParameterError(f"chapter {chapter.number}: {err}") from None
        choices.append(checked)
    combos = [dict(zip(names, combo)) for combo in _interleaved_product(choices)]
    for combo in combos:
        try:
            spec.resolve(profile=profile, **combo)
        except ParameterError as err:
            raise ParameterError(f"chapter {chapter.number}, {combo}: {err}") from None
    return combos, [n for n, c in zip(names, choices) if len(c) > 1]


def _interleaved_product(choices: list[list]) -> list[tuple]:
    """The cartesian product ordered so that a prefix of it spreads over every knob's values (by
    the largest value index, then their sum): round-robin over 30 students of a 3 x 20 grid gives
    each of the 3 values to 10 of them, where the plain product would give 20 to the first."""
    combos = list(itertools.product(*[range(len(c)) for c in choices]))
    combos.sort(key=lambda idx: (max(i for i in idx) if idx else 0, sum(idx), idx))
    return [tuple(c[i] for c, i in zip(choices, idx)) for idx in combos]


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
    for key, knobs in grid["chapters"].items():
        try:
            (chapter,) = find([str(key)], chapters)
        except (KeyError, ValueError):
            raise ParameterError(f"grid names chapter {key!r}, which the book does not have") from None
        if chapter.number in chosen:
            raise ParameterError(f"grid names chapter {chapter.number} twice (as {key!r} too)")
        options, varied = settings(chapter, knobs, grid["profile"])
        # each chapter draws from its own stream, fixed by its number
        picks = assign(students, options, grid["assign"], grid["seed"] * 1000 + int(chapter.number))
        chosen[chapter.number] = (chapter, varied, picks)
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
    """Check the roster, the grid, the chapters' notebooks and the output folder (which must be new
    or empty), then write a folder per student and the manifest."""
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    from .runner import check_out_dir

    roster, grid = read_roster(roster_path), read_grid(grid_path)
    out = check_out_dir(pathlib.Path(out))
    if out.exists() and any(out.iterdir()):
        raise ParameterError(f"{out} is not empty; a course goes into a new or empty folder")
    manifest = plan(roster, grid, chapters)
    by_number = {c.number: c for c in chapters}
    sources = {n: by_number[n].notebook(notebooks_dir) for n in manifest["chapters"]}
    missing = [str(p) for p in sources.values() if not p.is_file()]
    if missing:
        raise ParameterError(f"chapter notebook(s) not found: {missing}")
    for student, entry in manifest["students"].items():
        folder = out / student
        folder.mkdir(parents=True)
        for number, task in entry["chapters"].items():
            chapter = by_number[number]
            nb = load_notebook_node(str(sources[number]))   # papermill's reader adds the tag lists
            params = {**task["parameters"], "results_path": f"{chapter.name}.results.json"}
            nb = parameterize_notebook(nb, params, report_mode=False)
            (folder / f"{chapter.name}.ipynb").write_text(_nb_json(nb))
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def _nb_json(nb) -> str:
    import nbformat

    return nbformat.writes(nb) + "\n"


def load_manifest(course: pathlib.Path) -> dict:
    path = pathlib.Path(course) / MANIFEST
    if not path.is_file():
        raise ParameterError(f"{course} holds no course ({MANIFEST} missing); make one with 'ai4m course make'")
    return json.loads(path.read_text())


def tasks(course: pathlib.Path, chapters: Sequence[Chapter] = CHAPTERS) -> list[Task]:
    course = pathlib.Path(course).resolve()
    manifest = load_manifest(course)
    by_number = {c.number: c for c in chapters}
    return [Task(student, by_number[number], t["parameters"], course / student)
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

    if executor == "local" and (address or gpus_per_run):
        raise ParameterError("--address and --gpus-per-run go with --executor ray")
    every = tasks(course, chapters)
    todo = [dataclasses.replace(t, threads=max(1, int(cpus_per_run))) for t in every if not is_complete(t)]
    log(f"{len(todo)} run(s) to do, {len(every) - len(todo)} already complete; executor {executor}, "
        f"{jobs} at a time")
    if not todo:
        return []
    with executors.course_lock(pathlib.Path(course)):
        return executors.execute(todo, executor, jobs, address=address, cpus_per_run=cpus_per_run,
                                 gpus_per_run=gpus_per_run, log=log)


def collect(course: pathlib.Path, handins: pathlib.Path | None = None, chapters: Sequence[Chapter] = CHAPTERS):
    """See :func:`ai4m_helpers.course_report.collect`."""
    from .course_report import collect as _collect

    return _collect(course, handins, chapters)
