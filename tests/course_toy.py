"""A toy chapter for the course-mode tests: a notebook of two cells that writes a real record in a
second, so the tests exercise papermill, the executors and the records without a real chapter's
minute."""
from __future__ import annotations

import pathlib

import nbformat

from ai4m_helpers.chapters import Chapter
from ai4m_helpers.params import Param, ParamSpec

PARAMS = ParamSpec({
    "x": Param(float, 1.0, min=-10.0, max=10.0, help="the toy's knob"),
    "crash": Param(bool, False, help="fail inside the notebook"),
    "kill_once": Param(str, "", help="a marker path: the first run kills the worker running it"),
    "kill_always": Param(bool, False, help="every run kills the worker running it"),
    "n": Param(int, 1, min=1, max=100, help="an integer knob"),
})

PARAMETERS = '''profile = "smoke"
seed = 0
device = "cpu"
results_path = ""
x = None
crash = None
kill_once = None
kill_always = None
n = None'''

BODY = '''import os, pathlib
from ai4m_helpers.chapter import start_chapter
from course_toy import PARAMS   # found through PYTHONPATH, which the tests set
from ai4m_helpers.claims import decide, mean_ci
P, DEVICE, record = start_chapter("99", PARAMS, globals())
if P["kill_once"] and not pathlib.Path(P["kill_once"]).exists():
    pathlib.Path(P["kill_once"]).write_text("killed")
    os.kill(os.getppid(), 9)   # the process running this notebook dies: a lost run
if P["kill_always"]:
    os.kill(os.getppid(), 9)
if P["crash"]:
    raise RuntimeError("a planned failure")
record.add_metrics(y=2 * P["x"] + P["seed"])
record.add_claims([decide("x is positive", mean_ci([P["x"] - 0.1, P["x"], P["x"] + 0.1]),
                          direction="greater", margin=0.0)])
record.save(P["results_path"])'''

CHAPTER = Chapter("99", "toy", "A toy chapter", "course_toy:PARAMS", "runner")


def write_notebook(folder: pathlib.Path) -> pathlib.Path:
    """The toy's notebook in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(PARAMETERS, metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell(BODY)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = folder / f"{CHAPTER.name}.ipynb"
    nbformat.write(nb, str(path))
    return path
