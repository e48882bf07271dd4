"""The chapters as files (no outputs, paired twins, parameters) and as runs (smoke profile, book)."""
import json
import pathlib
import re

import jupytext
import pytest
import yaml

from ai4m_helpers import book, chapters, runner
from ai4m_helpers.chapters import REPO_ROOT
from ai4m_helpers.results import load_record

CHAPTERS = chapters.CHAPTERS


def cells_of(path):
    nb = jupytext.read(path)
    return [(c.cell_type, c.source.strip(), sorted(c.metadata.get("tags", []))) for c in nb.cells]


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda c: c.number)
def test_notebook_is_committed_without_outputs(chapter):
    nb = json.loads(chapter.notebook().read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert code and all(not c["outputs"] and c["execution_count"] is None for c in code)


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda c: c.number)
def test_notebook_and_its_text_twin_agree(chapter):
    twin = chapter.notebook().with_suffix(".py")
    assert twin.exists(), f"{twin} is missing: run `jupytext --sync {chapter.notebook()}`"
    assert cells_of(chapter.notebook()) == cells_of(twin), (
        f"{chapter.notebook().name} and its twin drifted: run `jupytext --sync` on the one you edited")


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda c: c.number)
def test_parameters_cell_matches_the_spec(chapter):
    assert runner.check_parameter_cell(chapter, chapter.spec()) == []


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda c: c.number)
def test_colab_cell_installs_from_the_books_repository(chapter):
    config = yaml.safe_load((REPO_ROOT / "_config.yml").read_text())
    repo = config["repository"]["url"]
    first_code = next(c for c in jupytext.read(chapter.notebook()).cells if c.cell_type == "code")
    assert "google.colab" in first_code.source and '"pip", ' in first_code.source   # %pip: output shown
    assert f'REPO = "git+{repo}"' in first_code.source
    assert f"ai4m-helpers[{chapter.extra}] @ {{REPO}}@{book.release_tag()}" in first_code.source


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda c: c.number)
def test_code_fits_the_books_width(chapter):
    lines = [line for cell in jupytext.read(chapter.notebook()).cells if cell.cell_type == "code"
             for line in cell.source.splitlines()]
    assert [line for line in lines if len(line) > 88] == []


def test_every_chapter_is_in_the_table_of_contents_in_order_and_unrenumbered():
    toc = yaml.safe_load((REPO_ROOT / "_toc.yml").read_text())
    part = next(p for p in toc["parts"] if p["caption"] == "Chapters")
    assert [c["file"] for c in part["chapters"]] == [f"notebooks/{c.name}.ipynb" for c in CHAPTERS]
    assert not part.get("numbered")          # the book would number them 1, 2, 3... over 01, 02, 04


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda c: c.number)
def test_one_number_and_one_title_everywhere(chapter):
    heading = next(c for c in jupytext.read(chapter.notebook()).cells if c.cell_type == "markdown")
    assert heading.source.splitlines()[0] == f"# {chapter.heading}"
    assert chapter.name.startswith(chapter.number + "_")
    methods = REPO_ROOT.parent / "shared" / "methods"
    if methods.is_dir():                     # the reference notes carry the same numbers
        assert any(n.name.startswith(chapter.number + "_") for n in methods.iterdir())


def test_no_path_of_the_build_machine_in_an_executed_notebook(tmp_path):
    """The runner injects a bare results file name and runs the kernel in the output folder."""
    import nbformat

    nbdir = tmp_path / "nb"
    nbdir.mkdir()
    chapter = chapters.Chapter("95", "where", "Where am I", "ai4m_helpers.robustness.params:PARAMS", "robustness")
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('profile = "smoke"\nseed = 0\nresults_path = ""')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell("import os\nprint(os.path.exists(results_path) or 'ok')")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, chapter.notebook(nbdir))
    out = tmp_path / "out"
    runner.run([chapter], "smoke", {}, out, notebooks_dir=nbdir, log=lambda m: None)
    text = (out / f"{chapter.name}.ipynb").read_text()
    assert str(tmp_path) not in text and str(REPO_ROOT) not in text
    assert 'results_path = \\"95_where.results.json\\"' in text


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
    """Every chapter executed once in the smoke profile, as `ai4m run` does."""
    out = tmp_path_factory.mktemp("smoke")
    entries = runner.run(list(CHAPTERS), "smoke", {}, out, keep_going=True)
    return out, {e["name"]: e for e in entries}


@pytest.mark.notebook
@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda c: c.number)
def test_chapter_runs_in_the_smoke_profile_and_records_its_claims(smoke_run, chapter):
    out, entries = smoke_run
    entry = entries[chapter.name]
    assert entry["status"] == "ok", runner.describe_entry(entry)
    record = load_record(out / f"{chapter.name}.results.json")
    assert record["chapter"] == chapter.number and record["profile"] == "smoke"
    assert record["claims"], "a chapter must record its claims"
    for claim in record["claims"]:
        assert claim["verdict"] in ("held", "not held", "inconclusive")
        assert claim["held"] is (claim["verdict"] == "held") and claim["n"] >= 1 and claim["unit"]
    SANITY[chapter.number](record)
    executed = json.loads((out / f"{chapter.name}.ipynb").read_text())
    stderr = [o["text"] for c in executed["cells"] for o in c.get("outputs", [])
              if o.get("output_type") == "stream" and o.get("name") == "stderr"]
    assert stderr == [], f"a reader would see these as error blocks: {stderr[:3]}"
    assert "widgets" not in executed.get("metadata", {})     # no live widget state in a batch run


def _sane_chapter_01(record):
    rows = {r["recipe"]: r for r in record["metrics"]["robust_pgd"]}
    assert {"PGD-AT", "PGD-AT + SRC", "TRADES", "TRADES + SRC"} <= set(rows)
    for row in rows.values():
        assert 0.3 < row["best_mean"] <= 1 and 0 <= row["last_mean"] <= 1   # well above chance (0.1)
    assert len(record["claims"]) == 5                 # four on the MLP and the ALP control
    assert record["metrics"]["conv_robust_pgd"] is None          # the smoke profile skips the conv net
    assert record["metrics"]["alp_matched"].startswith("PGD-AT + ALP")
    worst = {r["recipe"]: r for r in record["metrics"]["worst_case_last"]}
    assert set(worst) == set(rows)                                # every recipe met the Square attack
    assert all(r["worst of all"] <= min(r["worst of gradient attacks"], r["Square"]) for r in worst.values())
    assert {r["recipe"] for r in record["metrics"]["robust_worst"]} == set(rows)
    speed = record["metrics"]["speed"]
    assert speed["ours_s_per_epoch"] > 0 and speed["art_s_per_epoch"] > 0


def _sane_chapter_07(record):
    rows = record["metrics"]["summary"]
    from ai4m_helpers.active_learning.strategies import PARTIAL, STRATEGIES

    for task in ("xor", "iris", "digits"):
        for start in ("random", "biased", "sub-region"):
            got = {r["strategy"] for r in rows if r["task"] == task and r["start"] == start}
            ablation = start == "random" and task != "xor"      # XOR's two rules are not split
            assert got == set(STRATEGIES) | (set(PARTIAL) if ablation else set()), (task, start)
    rules_only = record["metrics"]["rules_only_f1"]
    assert rules_only["xor"] > 0.95 and rules_only["digits"] < 0.3      # the rules' own reach
    assert all(0 <= r["final F1"] <= 1 and 0 <= r["final violation rate"] <= 1 for r in rows)
    xor_random = next(r for r in rows if r["task"] == "xor" and r["start"] == "random"
                      and r["strategy"] == "random")
    assert xor_random["final F1"] > 0.6                     # learns XOR well above chance
    assert len(record["claims"]) == 6


def _sane_chapter_04(record):
    assert min(record["metrics"]["test_accuracy"].values()) > 0.8     # both CNNs learned
    rows = record["metrics"]["purity"]
    kinds = {r["direction"] for r in rows}
    assert {"neuron", "concept vectors", "means of random subsets of the same top images",
            "random non-negative directions", "class-mean directions (supervised reference)"} <= kinds
    assert {r["attribute"] for r in rows} == {"digit", "shape", "colour", "texture"}
    assert {c["dataset"] for c in record["metrics"]["cuts"]} == {"digits", "shapes"}
    assert all(0 < r["purity"] <= 1 for r in rows if r["purity"] is not None)
    assert all(-1 <= r["purity above chance"] <= 1 for r in rows if r["purity above chance"] is not None)
    assert len(record["claims"]) == 5


def _sane_chapter_08(record):
    m = record["metrics"]
    accuracy = [a["all"] for a in m["accuracy"]]
    assert all(a > 0.6 for a in accuracy)                                  # the detectors work...
    assert min(accuracy) < 0.99                                            # ...and err
    assert {a["dataset"] for a in m["accuracy"]} == {"blend", "upsample"}
    assert {a["condition"] for a in m["accuracy"]} == {"imbalanced", "balanced", "fine-tuned (clean)", "adversarially trained"}
    metrics = {r["metric"] for r in m["fairness"]}
    assert {"statistical_parity_difference", "disparate_impact", "false_positive_rate_difference",
            "equalized_odds_difference"} <= metrics
    assert {r["attribute"] for r in m["attributes"]} == {"skin", "age", "sex", "glasses", "background"}
    assert m["service_queries"] and all(q["queries"] > 0 for q in m["service_queries"])
    assert len(record["claims"]) == 4


def _sane_chapter_02(record):
    rows = {r["method"]: r for r in record["metrics"]["accuracy"]}
    assert set(rows) == {"K1", "K1 pair", "K2", "K2 pair", "perplexity"}
    assert all(0 <= r["accuracy"] <= 1 for r in rows.values())
    assert max(r["accuracy"] for r in rows.values()) > record["metrics"]["chance"]   # not blind
    assert record["metrics"]["queries_to_held_out_models"] > 0
    assert len(record["claims"]) == 5


def _sane_chapter_05(record):
    m = record["metrics"]
    runs = {r["run"] for r in m["runs"]}
    assert {"FedAvg", "FedAvg, encrypted", "DP-FedAvg, z = 0 (clipping only)"} <= runs
    plain = [r["accuracy"] for r in m["runs"] if r["run"] == "FedAvg"]
    assert min(plain) > 0.5                                                  # well above chance (0.25)
    assert max(m["aggregation_errors"]) < 1e-6 and 15 < m["expansion"] < 30
    assert m["predictions_tested"] > 0 and m["attack_clients"] > 0 and m["engine"] == "in-process"
    assert all(abs(p["ε (Opacus RDP)"] - p["target ε"]) < 1e-3 * p["target ε"] for p in m["privacy"])
    assert len(record["claims"]) == 4


def _sane_chapter_03(record):
    m = record["metrics"]
    arms = {"real", "no_density", "density", "swap", "swap_any"}
    assert {r["arm"] for r in m["downstream"]} == arms
    assert all(0 <= r["MAE"] <= r["RMSE"] < 40 for r in m["downstream"])
    assert {r["arm"] for r in m["fidelity"]} == arms - {"real"}
    assert m["intrinsic"]["classical counter MAE on real"] < 1.5         # the yardstick works
    assert all(0 <= q["colour accuracy"] <= 1 and q["images"] > 0 for q in m["quality"])
    assert 0 < m["swappable_captions"] <= 1 and m["base_unet"]["shapes"]
    assert len(record["claims"]) == 5


def _sane_chapter_06(record):
    m = record["metrics"]
    rows = {(r["level"], r["method"], r["epsilon"]): r for r in m["accuracy"]}
    assert {("edge", "MLP", "0.0"), ("edge", "GAP", "inf"), ("edge", "ProGAP", "inf")} <= set(rows)
    assert {(lvl, meth) for lvl, meth, _ in rows} >= {("node", "MLP-DP"), ("node", "GAP"), ("node", "ProGAP")}
    assert rows[("edge", "GAP", "inf")]["accuracy"] > 0.6                  # the graph helps without privacy
    assert all(abs(c["ε (this chapter)"] - c["ε"]) < 1e-6 * c["ε"] for c in m["calibration"])
    assert all(abs(c["ε (dp-accounting)"] - c["ε"]) < 1e-2 * c["ε"] for c in m["calibration"])
    assert all(c["σ"] > 0 for c in m["calibration"])
    assert {a["epsilon"] for a in m["attack"]} >= {"inf"} and all(0 <= a["attack AUC"] <= 1 for a in m["attack"])
    assert len(record["claims"]) == 4


def _sane_chapter_09(record):
    m = record["metrics"]
    finished = [s for s in m["submissions"] if s["status"] == "finished"]
    assert len(finished) == len(m["submissions"])                          # every honest run finished
    assert {row["participant"] for row in m["public"]} == {s["method"] for s in finished} | {"eve"}
    assert "mallory" not in {row["participant"] for row in m["public"] + m["private"]}
    if m["isolation"]["own user"]:       # without it the platform's data cannot be hidden (the chapter says so)
        spread = {"memory hog in four processes"}      # only a control group limits a run's processes together
        assert all(f["observed"] == f["expected"] for f in m["faulty"]
                   if m["isolation"].get("control group") or f["submission"] not in spread)
    assert max(row["accuracy"] for row in m["public"]) > 0.9
    assert len(m["split_sha256"]) == 64 and len(record["claims"]) == 3


def _sane_chapter_10(record):
    m = record["metrics"]
    methods = {r["method"] for r in m["disc"]}
    assert methods == {"attention", "LIME", "summary score", "longest fragment", "random"}
    assert all(-1 <= r["Disc+"] <= 1 and -1 <= r["Disc-"] <= 1 for r in m["disc"])
    assert all({"one by one", "batch"} <= set(r) for r in m["sanity_violation"])   # one row per method
    assert m["objects"] and all(r["objects"] >= 2 for r in m["objects"])
    assert m["rare"] and all(r["shots"] >= 4 for r in m["rare"])
    assert len(record["claims"]) == 3


SANITY = {"01": _sane_chapter_01, "02": _sane_chapter_02, "03": _sane_chapter_03, "04": _sane_chapter_04, "05": _sane_chapter_05,
          "06": _sane_chapter_06, "09": _sane_chapter_09,
          "07": _sane_chapter_07, "08": _sane_chapter_08, "10": _sane_chapter_10}


@pytest.mark.notebook
def test_book_builds_from_the_executed_chapters_without_warnings(smoke_run, tmp_path):
    out, entries = smoke_run
    if any(e["status"] != "ok" for e in entries.values()):
        pytest.skip("a chapter failed; its own test reports it")
    index = book.build(out, out_root=tmp_path)
    html = (tmp_path / "_build" / "html" / "notebooks" / f"{CHAPTERS[0].name}.html").read_text()
    assert "<img" in html                                   # figures made it into the page
    assert "colab.research.google.com" in html              # launch button
    assert "mathjax/MathJax.js" in html and "cdn.jsdelivr.net" not in html   # math renders offline
    assert "Run time, measured" in html
    downloads = {f.name for f in (tmp_path / "_build" / "html" / "_downloads").rglob("*") if f.is_file()}
    assert {f"{CHAPTERS[0].name}.ipynb", f"{CHAPTERS[0].name}.py"} <= downloads
    if book.browser():
        pdfs = tmp_path / "_build" / "html" / "pdf"
        assert (pdfs / book.BOOK_PDF).stat().st_size > 100_000 and (pdfs / f"{CHAPTERS[0].name}.pdf").exists()
    else:
        print("no Chromium here: the book's PDF was not printed")
    repro = (tmp_path / "_build" / "html" / "book" / "reproduction.html").read_text()
    assert re.search(r"effect \[95% CI\]", repro)          # this build's claims are on the page
    assert index.exists()
    # as a reader's browser sees it: served over HTTP, every page loaded in headless Chromium
    from ai4m_helpers import book_check

    reason = book_check.available()
    if reason:
        print(f"browser check skipped: {reason}")
    else:
        assert book_check.check(tmp_path / "_build" / "html", CHAPTERS) == []


@pytest.mark.notebook
def test_chapter_01_full_profile_paths_run_at_toy_size(tmp_path):
    """The full profile's code paths (several seeds, the whole λ×τ grid) at a size CI can afford."""
    chapter = chapters.find(["01"])[0]
    toy = {"profile": "full", "device": "cpu", "n_train": 100, "n_val": 100, "width": 16, "epochs": 4,
           "eval_every": 2, "seeds": 2, "apgd_iter": 2, "apgd_size": 20, "square_size": 20,
           "square_queries": 10, "conv_train": 64,
           "conv_eval": 32, "conv_width": 4, "conv_epochs": 1, "benchmark": False}
    entry = runner.run([chapter], "full", {chapter.name: toy}, tmp_path, log=lambda m: None)[0]
    assert entry["status"] == "ok", runner.describe_entry(entry)
    record = load_record(tmp_path / f"{chapter.name}.results.json")
    assert record["profile"] == "full" and record["parameters"]["ablation_lambdas"] == [0.1, 0.3, 1.0, 3.0]
    rows = record["metrics"]["robust_pgd"]
    # 4 named recipes, SRC on 4 λ x 2 τ (one of them the main recipe), ALP on the 4 λ
    assert len(rows) == 4 + 7 + 4 and all(r["seeds_n"] == 2 and "gap_std" in r for r in rows)
    assert len(record["claims"]) == 6 and record["metrics"]["conv_robust_pgd"]
    mlp_claims = record["claims"][:4]
    assert all(c["n"] == 2 and c["unit"] == "seed" for c in mlp_claims)
    # two seeds give an interval unless their differences agree exactly (then too few to decide)
    assert all(c["ci"] is not None or "agree exactly" in c["note"] for c in mlp_claims)


@pytest.mark.notebook
def test_chapter_04_full_profile_paths_run_at_toy_size(tmp_path):
    """Both datasets, per-attribute purity and several seeds, at a CI-sized scale."""
    chapter = chapters.find(["04"])[0]
    toy = {"profile": "full", "device": "cpu", "seeds": 2, "channels": 16, "train_steps": 30,
           "shapes_steps": 30, "n_images": 1500, "top_n": 40, "eval_top": 20, "n_random": 3,
           "thresholds": [0.3, 0.6]}
    entry = runner.run([chapter], "full", {chapter.name: toy}, tmp_path, log=lambda m: None)[0]
    assert entry["status"] == "ok", runner.describe_entry(entry)
    record = load_record(tmp_path / f"{chapter.name}.results.json")
    attributes = {r["attribute"] for r in record["metrics"]["purity"]}
    assert attributes == {"digit", "shape", "colour", "texture"}
    assert len(record["metrics"]["test_accuracy"]) == 4                  # two datasets, two seeds


def _readme_block(heading: str) -> list[str]:
    text = (REPO_ROOT / "README.md").read_text()
    section = text.split(f"## {heading}", 1)[1]
    block = section.split("```bash", 1)[1].split("```", 1)[0]
    return [line.split("  #")[0].strip() for line in block.strip().splitlines() if line.strip()]


def test_a_book_stages_whatever_chapters_a_folder_holds(tmp_path):
    first = CHAPTERS[0]
    executed = tmp_path / "runs"
    executed.mkdir()
    (executed / f"{first.name}.ipynb").write_text(first.notebook().read_text())
    staged = book.stage(executed, tmp_path / "stage")
    assert staged == [first.number]
    toc = (tmp_path / "stage" / "_toc.yml").read_text()
    assert first.name in toc and all(c.name not in toc for c in CHAPTERS[1:])
    page = (tmp_path / "stage" / book.THIS_BUILD_PAGE).read_text()
    assert "Not run for this build" in page and CHAPTERS[1].heading in page
    with pytest.raises(book.BookError, match="no executed chapter"):
        book.stage(tmp_path / "stage" / "book", tmp_path / "stage2")


@pytest.mark.notebook
def test_the_readme_class_workflow_runs_verbatim(tmp_path):
    """The commands of the README's class section, as written (the full-profile line is a GPU's job)."""
    import os
    import subprocess
    import sys

    (tmp_path / "notebooks").symlink_to(REPO_ROOT / "notebooks")
    env = {**os.environ, "PATH": f"{pathlib.Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    ran = []
    for line in _readme_block("Run chapters for a class"):
        if "--profile full" in line:
            continue
        command = line.replace(".venv/bin/", "")
        proc = subprocess.run(command, shell=True, cwd=tmp_path, env=env, capture_output=True, text=True)
        assert proc.returncode == 0, f"{line}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
        ran.append(line)
    record = load_record(tmp_path / "runs" / "student-03" / f"{CHAPTERS[0].name}.results.json")
    assert record["parameters"]["seed"] == 3 and record["parameters"]["eps"] == 0.2
    assert any(line.split()[1] == "book" for line in ran) and (tmp_path / "out.ipynb").exists()


def test_measured_times_come_from_committed_records(tmp_path):
    records = tmp_path / "runs"
    records.mkdir()
    defaults = CHAPTERS[0].spec().defaults("smoke")
    base = {"chapter": "01", "profile": "smoke", "parameters": defaults, "seed": 0,
            "device": "cpu: test (2 threads)", "versions": {}, "metrics": {}, "claims": []}
    for day, total in (("2026-11-01", 50.0), ("2026-11-20", 41.5)):
        (records / f"01_smoke_{day}.results.json").write_text(
            json.dumps({**base, "started": f"{day}T10:00:00+00:00", "timings_s": {"total": total}}))
    (records / "01_smoke_other_sizes.results.json").write_text(json.dumps(
        {**base, "parameters": {**defaults, "epochs": 7}, "started": "2026-11-30T10:00:00+00:00",
         "timings_s": {"total": 3.0}}))              # not the profile's sizes: not its time
    measured = book.measured_times(records)
    assert measured["01"]["smoke"]["seconds"] == 41.5 and measured["01"]["smoke"]["date"] == "2026-11-20"
    note = book.runtime_note(measured["01"])
    assert "`smoke` 42 s on cpu: test (2 threads) (2026-11-20)" in note and "`full` not measured yet" in note
    table = book.execution_table(measured)
    assert "| 41.5 | cpu: test (2 threads) | 2026-11-20 |" in table and "not measured yet" in table


def test_the_committed_records_page_says_what_each_run_changed_and_decided(tmp_path):
    records = tmp_path / "runs"
    records.mkdir()
    defaults = CHAPTERS[0].spec().defaults("full")
    claim = {"name": "SRC helps", "verdict": "held", "held": True, "effect": 0.03, "ci": [0.02, 0.04],
             "n": 5, "unit": "seed", "margin": 0.0, "direction": "greater", "method": "paired t"}
    (records / "01_full_x.results.json").write_text(json.dumps(
        {"chapter": "01", "profile": "full", "parameters": {**defaults, "width": 256, "seed": 4},
         "seed": 4, "device": "cpu: test", "versions": {}, "metrics": {}, "claims": [claim],
         "started": "2026-11-29T10:00:00+00:00", "timings_s": {"total": 515.3}}))
    smoke = CHAPTERS[0].spec().defaults("smoke")
    for name, params in (("01_smoke_timing", smoke), ("01_smoke_study", {**smoke, "epochs": 7})):
        (records / f"{name}.results.json").write_text(json.dumps(
            {"chapter": "01", "profile": "smoke", "parameters": params, "seed": 0, "device": "cpu: test",
             "versions": {}, "metrics": {}, "claims": [claim], "started": "2026-11-28T10:00:00+00:00",
             "timings_s": {"total": 40.0}}))
    page = book.committed_records_page(records)
    assert "`01_full_x.results.json`" in page and "`width = 256`" in page and "`seed" not in page
    assert "01_smoke_study" in page and "`epochs = 7`" in page and "01_smoke_timing" not in page
    assert "515.3 s" in page and "SRC helps" in page and "**held**" in page
    assert "No record" in book.committed_records_page(tmp_path / "none")


def test_the_reproduction_pages_cite_only_committed_records():
    committed = {p.name for p in (REPO_ROOT / book.RECORDS_DIR).glob("*.results.json")}
    for page in (REPO_ROOT / "book").rglob("*.md"):
        cited = set(re.findall(r"\b\d\d_[\w.-]+\.results\.json", page.read_text()))
        assert cited <= committed, f"{page.name} cites records that are not committed: {cited - committed}"


def test_every_committed_record_is_a_valid_record():
    for path in (REPO_ROOT / book.RECORDS_DIR).glob("*.results.json"):
        load_record(path)


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda c: c.number)
def test_bookkeeping_cells_are_folded_in_the_book(chapter):
    code = [c for c in jupytext.read(chapter.notebook()).cells if c.cell_type == "code"]
    folded = ["hide-input" in c.metadata.get("tags", []) for c in code]
    assert folded[:4] == [True] * 4 and folded[-1]       # install, parameters, start, imports; the record
    assert "parameters" in code[1].metadata["tags"]
    assert not all(folded)                               # the method's code stays in view
