"""Course mode: roster and grid checks, assignment, make / run / collect on a toy chapter, both
executors, a lost worker, and the hand-in tamper check."""
from __future__ import annotations

import json
import os
import pathlib
import shutil

import pytest

from ai4m_helpers import course, course_report
from ai4m_helpers.params import ParameterError

import course_toy

TESTS = pathlib.Path(__file__).parent
CHAPTERS = (course_toy.CHAPTER,)


@pytest.fixture
def toy(tmp_path, monkeypatch):
    """A roster of four, a grid over the toy's knob, and the toy's notebook."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]))
    notebooks = tmp_path / "notebooks"
    course_toy.write_notebook(notebooks)
    roster = tmp_path / "roster.csv"
    roster.write_text("student,name\nada,Ada L.\nbob,Bob K.\ncy,Cy T.\ndee,Dee M.\n")
    grid = tmp_path / "grid.yml"
    grid.write_text("profile: smoke\nassign: round-robin\nchapters:\n  '99':\n    x: [0.5, 1.5]\n    seed: [1]\n")
    return roster, grid, notebooks, tmp_path / "course"


def make(toy):
    roster, grid, notebooks, out = toy
    return course.make(roster, grid, out, chapters=CHAPTERS, notebooks_dir=notebooks)


def test_roster_and_grid_mistakes_are_refused_in_one_line(tmp_path):
    bad = tmp_path / "r.csv"
    bad.write_text("student\nada\nada\n")
    with pytest.raises(ParameterError, match="listed twice"):
        course.read_roster(bad)
    bad.write_text("student\nada/../x\n")
    with pytest.raises(ParameterError, match="letters, digits"):
        course.read_roster(bad)
    bad.write_text("name\nada\n")
    with pytest.raises(ParameterError, match="'student' column"):
        course.read_roster(bad)
    bad.write_text("student\nAda\nada\n")
    with pytest.raises(ParameterError, match="listed twice"):
        course.read_roster(bad)                                   # one folder on a Mac or Windows
    bad.write_text("student\nreport\n")
    with pytest.raises(ParameterError, match="not one of"):
        course.read_roster(bad)
    bad.write_bytes("\ufeffstudent,name\nada,Ada\n".encode("utf-8"))   # Excel's "CSV UTF-8"
    assert course.read_roster(bad) == [{"student": "ada", "name": "Ada"}]
    bad.write_bytes(b"student\n\xe9l\xe8ve\n")
    with pytest.raises(ParameterError, match="UTF-8"):
        course.read_roster(bad)
    with pytest.raises(ParameterError, match="seed must be"):
        course.check_grid({"chapters": {"99": {}}, "seed": -1})
    with pytest.raises(ParameterError, match="needs numbers"):
        course._values("x", {"range": ["a", 1, 3]})
    with pytest.raises(ParameterError, match="whole numbers"):
        course._values("n", {"range": [1, 2, 3]}, int)
    with pytest.raises(ParameterError, match="twice"):
        course.plan([{"student": "a"}], course.check_grid({"chapters": {"99": {}, "toy": {}}}), CHAPTERS)
    with pytest.raises(ParameterError, match="unknown key"):
        course.check_grid({"chapters": {"99": {}}, "students": 3})
    with pytest.raises(ParameterError, match="assign must be"):
        course.check_grid({"chapters": {"99": {}}, "assign": "alphabetical"})
    with pytest.raises(ParameterError, match="range is written"):
        course._values("x", {"range": [0, 1]})
    with pytest.raises(ParameterError, match="does not have"):
        course.plan([{"student": "a"}], course.check_grid({"chapters": {"42": {}}}), CHAPTERS)
    with pytest.raises(ParameterError, match="must be <= 10"):
        course.plan([{"student": "a"}], course.check_grid({"chapters": {"99": {"x": [1, 11]}}}), CHAPTERS)
    with pytest.raises(ParameterError, match="unknown parameter"):
        course.plan([{"student": "a"}], course.check_grid({"chapters": {"99": {"lr": [1]}}}), CHAPTERS)
    with pytest.raises(ParameterError, match="set by the course"):
        course.plan([{"student": "a"}], course.check_grid({"chapters": {"99": {"profile": "full"}}}), CHAPTERS)


def test_assignment_is_deterministic_and_follows_the_rule():
    options = [{"x": v} for v in (1, 2, 3)]
    students = ["a", "b", "c", "d"]
    assert course.assign(students, options, "round-robin", 0) == [{"x": 1}, {"x": 2}, {"x": 3}, {"x": 1}]
    assert course.assign(students[:3], options, "one-per-student", 0) == options
    with pytest.raises(ParameterError, match="at least 4 settings"):
        course.assign(students, options, "one-per-student", 0)
    drawn = course.assign(students, options, "random", 7)
    assert drawn == course.assign(students, options, "random", 7) and all(d in options for d in drawn)
    grid = course.check_grid({"chapters": {"99": {"x": {"range": [0.0, 1.0, 3]}, "seed": [4], "n": {"range": [1, 5, 3]}}}})
    plan = course.plan([{"student": s} for s in students], grid, CHAPTERS)
    got = [plan["students"][s]["chapters"]["99"]["parameters"] for s in students]
    assert all(isinstance(g["n"], int) and g["n"] in (1, 3, 5) and g["seed"] == 4 for g in got)
    assert plan["chapters"]["99"]["varied"] == ["x", "n"]                 # a single value does not vary


def test_round_robin_over_a_prefix_of_the_grid_still_spreads_every_knob():
    grid = course.check_grid({"chapters": {"99": {"x": [1.0, 2.0, 3.0], "seed": list(range(20))}}})
    plan = course.plan([{"student": f"s{i}"} for i in range(30)], grid, CHAPTERS)
    xs = [e["chapters"]["99"]["parameters"]["x"] for e in plan["students"].values()]
    assert sorted(xs.count(v) for v in (1.0, 2.0, 3.0)) == [10, 10, 10]


def test_make_writes_parameterised_notebooks_and_a_manifest_and_refuses_a_used_folder(toy):
    manifest = make(toy)
    out = toy[3]
    assert set(manifest["students"]) == {"ada", "bob", "cy", "dee"}
    params = course_report.notebook_parameters(out / "bob" / "99_toy.ipynb")
    assert params["x"] == 1.5 and params["seed"] == 1 and params["results_path"] == "99_toy.results.json"
    assert json.loads((out / course.MANIFEST).read_text())["students"]["cy"]["chapters"]["99"]["parameters"] == \
        {"profile": "smoke", "seed": 1, "x": 0.5}
    with pytest.raises(ParameterError, match="not empty"):
        make(toy)
    roster, grid, notebooks, _ = toy
    with pytest.raises(ParameterError, match="not found"):
        course.make(roster, grid, out.parent / "elsewhere", chapters=CHAPTERS, notebooks_dir=out.parent / "none")
    assert not (out.parent / "elsewhere").exists() or not any((out.parent / "elsewhere").iterdir())


@pytest.mark.notebook
def test_run_is_resumable_one_failure_keeps_the_others_and_collect_flags_it(toy):
    make(toy)
    out = toy[3]
    # one student's chapter is made to fail inside its notebook
    nb = out / "dee" / "99_toy.ipynb"
    nb.write_text(nb.read_text().replace("kill_once = None", "kill_once = None\\ncrash = True"))
    entries = course.run(out, "local", jobs=2, chapters=CHAPTERS, log=lambda *_: None)
    assert sorted(e["status"] for e in entries) == ["failed", "ok", "ok", "ok"]
    again = course.run(out, "local", jobs=2, chapters=CHAPTERS, log=lambda *_: None)
    assert [e["student"] for e in again] == ["dee"]                     # only the failed one is re-run
    table = course.collect(out, chapters=CHAPTERS)
    assert dict(zip(table["student"], table["status"])) == {"ada": "ok", "bob": "ok", "cy": "ok", "dee": "failed"}
    assert (out / "report" / "report.md").exists() and (out / "report" / "99.png").exists()
    assert "dee (failed)" in (out / "report" / "report.md").read_text()
    assert set(table.loc[table["status"] == "ok", "metric: y"]) == {2 * 1.5 + 1, 2 * 0.5 + 1}
    # the prepared notebooks stay as handed out; the executed ones are in runs/
    assert "kill_once" in (out / "ada" / "99_toy.ipynb").read_text()
    assert json.loads((out / "ada" / "99_toy.ipynb").read_text())["cells"][-1]["outputs"] == []
    assert (out / "ada" / "runs" / "99_toy.ipynb").exists()


@pytest.mark.notebook
@pytest.mark.parametrize("executor", ["local", "ray"])
def test_a_run_whose_worker_dies_is_retried_and_its_record_appears_once(toy, executor):
    make(toy)
    out = toy[3]
    marker = out / "killed-once"
    nb = out / "ada" / "99_toy.ipynb"
    nb.write_text(nb.read_text().replace('kill_once = None', f'kill_once = {str(marker)!r}', 1))
    entries = course.run(out, executor, jobs=2, chapters=CHAPTERS, log=lambda *_: None)
    assert marker.exists()                                               # the first attempt died
    assert sorted(e["student"] for e in entries) == ["ada", "bob", "cy", "dee"]
    assert all(e["status"] == "ok" for e in entries)
    records = {s: json.loads((out / s / "runs" / "99_toy.results.json").read_text()) for s in ("bob", "cy")}
    assert records["bob"]["metrics"]["y"] == 2 * 1.5 + 1 and records["cy"]["metrics"]["y"] == 2 * 0.5 + 1


@pytest.mark.notebook
def test_a_run_whose_worker_always_dies_fails_alone_after_its_retries(toy):
    make(toy)
    out = toy[3]
    nb = out / "bob" / "99_toy.ipynb"
    nb.write_text(nb.read_text().replace("kill_always = None", "kill_always = True", 1))
    entries = course.run(out, "local", jobs=2, chapters=CHAPTERS, log=lambda *_: None)
    status = {e["student"]: e["status"] for e in entries}
    assert status == {"ada": "ok", "bob": "failed", "cy": "ok", "dee": "ok"}
    lost = next(e for e in entries if e["student"] == "bob")
    assert lost["error"]["ename"] == "WorkerLost"
    summary = json.loads((out / "bob" / "runs" / "summary.json").read_text())
    assert summary["chapters"]["99_toy"]["status"] == "failed"


@pytest.mark.notebook
def test_handins_edited_after_the_run_are_refused_and_a_bad_one_stops_nobody(toy, tmp_path):
    make(toy)
    out = toy[3]
    course.run(out, "local", jobs=2, chapters=CHAPTERS, log=lambda *_: None)
    handins = tmp_path / "handins"
    for s in ("ada", "bob", "cy", "dee"):
        shutil.copytree(out / s / "runs", handins / s)
    record = handins / "bob" / "99_toy.results.json"
    data = json.loads(record.read_text())
    data["parameters"]["x"] = 9.0                                        # parameters edited after the run
    record.write_text(json.dumps(data))
    nb = handins / "cy" / "99_toy.ipynb"
    nb.write_text(nb.read_text().replace('x = 0.5', 'x = 3.0'))          # the notebook edited after the run
    record = handins / "dee" / "99_toy.results.json"
    data = json.loads(record.read_text())
    data["metrics"]["y"] = 100.0                                         # a result edited after the run
    record.write_text(json.dumps(data))
    (handins / "zed").mkdir()                                            # a folder of nobody on the roster
    table = course.collect(out, handins, chapters=CHAPTERS)
    status = dict(zip(table["student"], table["status"]))
    assert status["ada"] == "ok"
    assert status["bob"] == "refused: the record's parameters were edited after the run"
    assert status["cy"].startswith("refused: the notebook's parameters differ")
    assert status["dee"] == "refused: the record was edited after the run"
    assert "match no student: zed" in (out / "report" / "report.md").read_text()
    (handins / "ada" / "99_toy.ipynb").unlink()
    (handins / "bob" / "99_toy.results.json").write_text("null")         # not a record at all
    status = dict(zip(*[course.collect(out, handins, chapters=CHAPTERS)[c] for c in ("student", "status")]))
    assert status["ada"] == "refused: the executed notebook 99_toy.ipynb was not handed in"
    assert status["bob"].startswith("refused: unreadable")


def readme_commands() -> list[str]:
    """The commands of the README's "Teaching with the book" section, as written there."""
    text = (TESTS.parent / "README.md").read_text()
    section = text.split("## Teaching with the book", 1)[1]
    block = section.split("```bash", 1)[1].split("```", 1)[0]
    return [line.strip() for line in block.strip().splitlines()]


@pytest.mark.notebook
def test_the_readme_teaching_commands_run_verbatim(tmp_path):
    """The three commands, as the README gives them, on the example roster and grid (three smoke
    runs of chapter 4); only the output folder is moved to a temporary one."""
    import shlex
    import subprocess

    commands = readme_commands()
    assert [c.split()[2] for c in commands] == ["make", "run", "collect"]
    root = TESTS.parent
    for command in commands:
        argv = [a.replace("runs/course", str(tmp_path / "course")) for a in shlex.split(command)]
        argv[0] = str(root / argv[0])
        done = subprocess.run(argv, cwd=root, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
    table = (tmp_path / "course" / "report" / "table.csv").read_text()
    assert table.count(",ok,") == 3
    html = (tmp_path / "course" / "report" / "report.html").read_text()
    assert "<table>" in html and "<script" not in html


@pytest.mark.notebook
def test_the_local_and_ray_executors_give_the_same_records(toy, tmp_path):
    roster, grid, notebooks, _ = toy
    records = {}
    for executor in ("local", "ray"):
        out = tmp_path / executor
        course.make(roster, grid, out, chapters=CHAPTERS, notebooks_dir=notebooks)
        entries = course.run(out, executor, jobs=2, chapters=CHAPTERS, log=lambda *_: None)
        assert all(e["status"] == "ok" for e in entries)
        records[executor] = {s: json.loads((out / s / "runs" / "99_toy.results.json").read_text())
                             for s in ("ada", "bob", "cy", "dee")}
    for s in ("ada", "bob", "cy", "dee"):
        local, ray = records["local"][s], records["ray"][s]
        assert local["parameters"] == ray["parameters"] and local["metrics"] == ray["metrics"]
        assert [c["effect"] for c in local["claims"]] == [c["effect"] for c in ray["claims"]]
