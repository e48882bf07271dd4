import json
import pathlib
import subprocess
import sys

import nbformat
import pytest

from ai4m_helpers import chapters, runner
from ai4m_helpers.params import ParameterError

SPEC_REF = "ai4m_helpers.robustness.params:PARAMS"


def write_notebook(path, body):
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('profile = "smoke"\nseed = 0\nresults_path = ""')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


RECORDING = """
from ai4m_helpers import claims as C
from ai4m_helpers.results import ResultsRecord
rec = ResultsRecord("98", {"profile": profile, "seed": seed}, "cpu: test")
rec.add_claim(C.decide("the seed is what was asked", C.mean_ci([seed - 4.01, seed - 4.0, seed - 3.99]),
                       direction="less", margin=0.5, evidence={"seed": seed}))
rec.save(results_path)
"""


@pytest.fixture
def two_chapters(tmp_path):
    nbdir = tmp_path / "notebooks"
    nbdir.mkdir()
    good = chapters.Chapter("98", "good", "Passes", SPEC_REF, "robustness")
    bad = chapters.Chapter("97", "bad", "Fails", SPEC_REF, "robustness")
    write_notebook(good.notebook(nbdir), RECORDING)
    write_notebook(bad.notebook(nbdir), "x = 1\nraise ValueError('deliberate failure')")
    return nbdir, good, bad


def test_a_failing_chapter_is_reported_and_keeps_the_others(two_chapters, tmp_path):
    nbdir, good, bad = two_chapters
    out = tmp_path / "out"
    entries = runner.run([good], "smoke", {good.name: {"seed": 4}}, out, notebooks_dir=nbdir, log=lambda m: None)
    assert entries[0]["status"] == "ok" and entries[0]["claims"][0]["held"] is True
    record_file = out / f"{good.name}.results.json"
    assert json.loads(record_file.read_text())["seed"] == 4

    entries = runner.run([bad, good], "smoke", {}, out, notebooks_dir=nbdir, keep_going=False,
                         log=lambda m: None)
    assert [e["status"] for e in entries] == ["failed"]          # stopped at the failure
    err = entries[0]["error"]
    assert err["cell"] == 2 and err["ename"] == "ValueError" and "deliberate" in err["evalue"]
    summary = runner.load_summary(out)
    assert summary["chapters"][good.name]["status"] == "ok"       # the earlier record survives
    assert record_file.exists()
    assert summary["chapters"][bad.name]["status"] == "failed"
    summary_md = (out / runner.SUMMARY_MD).read_text()
    assert "failed" in summary_md and "1 held" in summary_md and "**held**" in summary_md

    entries = runner.run([bad, good], "smoke", {}, out, notebooks_dir=nbdir, keep_going=True,
                         log=lambda m: None)
    assert [e["status"] for e in entries] == ["failed", "ok"]
    assert runner.describe_entry(entries[0]).startswith("FAILED") and "cell 2" in runner.describe_entry(entries[0])


def test_a_notebook_that_writes_no_record_counts_as_failed(tmp_path):
    nbdir = tmp_path / "nb"
    nbdir.mkdir()
    silent = chapters.Chapter("96", "silent", "Writes nothing", SPEC_REF, "robustness")
    write_notebook(silent.notebook(nbdir), "x = 1")
    entry = runner.run([silent], "smoke", {}, tmp_path / "out", notebooks_dir=nbdir, log=lambda m: None)[0]
    assert entry["status"] == "failed" and entry["error"]["ename"] == "NoResultsRecord"


def test_a_kernel_that_dies_on_start_is_started_again(two_chapters, tmp_path, monkeypatch):
    import papermill

    nbdir, good, _ = two_chapters
    real, calls = papermill.execute_notebook, []

    def flaky(*args, **kwargs):   # the first start loses its port to another kernel
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError(runner.KERNEL_START_FAILURE)
        return real(*args, **kwargs)

    monkeypatch.setattr(papermill, "execute_notebook", flaky)
    entry = runner.run([good], "smoke", {good.name: {"seed": 4}}, tmp_path / "out", notebooks_dir=nbdir,
                       log=lambda m: None)[0]
    assert entry["status"] == "ok" and len(calls) == 2


def test_overrides_are_parsed_checked_and_scoped():
    ch1 = chapters.find(["01"])
    assert runner.parse_overrides([("seed", "3"), ("eps", "0.2")], ch1) == {ch1[0].name: {"seed": 3, "eps": 0.2}}
    assert runner.parse_overrides([("01:lam", "2")], ch1)[ch1[0].name] == {"lam": 2.0}
    with pytest.raises(ParameterError, match="unknown parameter 'no_such_knob'"):
        runner.parse_overrides([("no_such_knob", "1")], ch1)
    with pytest.raises(ParameterError, match="expects int"):
        runner.parse_overrides([("seed", "three")], ch1)
    with pytest.raises(ParameterError, match="must be one of"):
        runner.parse_overrides([("profile", "huge")], ch1)
    with pytest.raises(ParameterError, match="not being run"):
        runner.parse_overrides([("05:lam", "1")], ch1)


def test_chapters_are_found_by_number_or_slug():
    assert chapters.find(["1"]) == chapters.find(["src_robust_overfitting"]) == chapters.find(["01"])
    with pytest.raises(KeyError, match="no chapter named"):
        chapters.find(["42"])


def ai4m(*args):
    return subprocess.run([sys.executable, "-m", "ai4m_helpers.cli", *args], capture_output=True, text=True)


def test_cli_refuses_unknown_parameters_before_any_work(tmp_path):
    out = tmp_path / "out"
    proc = ai4m("run", "01", "--profile", "smoke", "-p", "no_such_knob", "1", "--out", str(out))
    assert proc.returncode == 2
    assert "unknown parameter 'no_such_knob'" in proc.stderr
    assert not out.exists()                         # nothing was written
    proc = ai4m("run", "01", "-p", "label_noise", "1.5", "--out", str(out))
    assert proc.returncode == 2 and "<= 0.9" in proc.stderr and not out.exists()
    proc = ai4m("run", "01", "-p", "n_train", "1000", "-p", "n_val", "1000", "--out", str(out))
    assert proc.returncode == 2 and "test split" in proc.stderr and not out.exists()
    proc = ai4m("run", "42", "--out", str(out))
    assert proc.returncode == 2 and "no chapter named" in proc.stderr


BAD_INPUTS = [
    (["-p", "no_such_knob", "1"], "unknown parameter 'no_such_knob'"),
    (["-p", "seed", "three"], "expects int"),
    (["-p", "seed", "-1"], ">= 0"),
    (["-p", "seed", "123456789012345678901"], "<= 4294967295"),
    (["-p", "lam", "nan"], "NaN"),
    (["-p", "label_noise", "1.5"], "<= 0.9"),
    (["-p", "ablation_taus", "0.5,1.5"], "strictly between 0 and 1"),
    (["-p", "ablation_lambdas", "1,x"], "expects float"),
    (["-p", "n_train", "1000", "-p", "n_val", "1000"], "test split"),
    (["--profile", "huge"], "invalid choice"),
]


@pytest.mark.parametrize("extra, message", BAD_INPUTS, ids=[m for _, m in BAD_INPUTS])
def test_bad_inputs_are_refused_in_one_line_before_anything_is_written(tmp_path, extra, message):
    out = tmp_path / "out"
    proc = ai4m("run", "01", *extra, "--out", str(out))
    assert proc.returncode == 2 and message in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert not out.exists()


def test_unusable_output_folders_are_refused(tmp_path):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    for out, message in [(a_file, "is a file"), (a_file / "below", "which is a file"),
                         (pathlib.Path("/proc/ai4m-out"), "cannot write")]:
        proc = ai4m("run", "01", "--out", str(out))
        assert proc.returncode == 2 and message in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    proc = ai4m("book", "--from", str(tmp_path / "missing"))
    assert proc.returncode == 2 and "not a folder" in proc.stderr


def test_cli_lists_chapters_and_their_knobs():
    proc = ai4m("list")
    assert proc.returncode == 0, proc.stderr
    assert "01 — Self-residual calibration against robust overfitting  (src_robust_overfitting)" in proc.stdout
    assert "lam" in proc.stdout and "ablation_taus" in proc.stdout
    assert "warning" not in proc.stdout             # the parameters cell matches the spec


def test_heartbeat_reports_elapsed_time():
    import time

    lines = []
    with runner.heartbeat(lines.append, "01", every_s=0.05):
        time.sleep(0.18)
    assert lines and all("chapter 01 still running" in line for line in lines)


def test_papermill_run_directly_stops_a_bad_parameter_in_one_line(tmp_path):
    import papermill
    from papermill.exceptions import PapermillExecutionError

    chapter = chapters.find(["08"])[0]
    with pytest.raises(PapermillExecutionError) as caught:
        papermill.execute_notebook(str(chapter.notebook()), str(tmp_path / "out.ipynb"),
                                   parameters={"train_group_share": 1.5}, progress_bar=False,
                                   kernel_name="python3", cwd=str(chapter.notebook().parent))
    err = caught.value
    assert err.ename == "SystemExit" and err.evalue.startswith("ParameterError: parameter 'train_group_share'")
    assert err.cell_index <= 4                            # before any heavy import or work


def test_the_book_keeps_each_page_script_once():
    """sphinx-thebe registers its inline configuration twice (once with filename None, once with
    ""): declared twice, its `const` is a script error in every reader's browser."""
    from sphinx.builders.html._assets import _JavaScript

    from ai4m_helpers.sphinx_fixes import drop_duplicate_scripts

    body = {"body": 'const THEBE_JS_URL = "x"'}
    context = {"script_files": [_JavaScript("a.js"), _JavaScript(None, **body), _JavaScript("", **body),
                                _JavaScript("a.js"), _JavaScript("b.js", **{"async": "async"})]}
    scripts = context["script_files"]
    drop_duplicate_scripts(None, "page", "page.html", context, None)
    assert context["script_files"] is scripts           # in place: later handlers (MathJax) add to it
    assert [(js.filename, js.attributes) for js in context["script_files"]] == \
        [("a.js", {}), (None, body), ("b.js", {"async": "async"})]
