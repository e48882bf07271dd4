"""Build the HTML book (Jupyter Book 1.x) from executed notebooks, never from committed outputs.

The sources are staged in a scratch folder: the book's pages, and each chapter's *executed*
notebook in place of the committed, output-free one. The staged configuration turns execution off,
so what the reader sees is exactly what the run recorded.
"""
from __future__ import annotations

import json
import pathlib
import shutil
import subprocess
import sys

import yaml

from .chapters import CHAPTERS, REPO_ROOT
from .claims import claims_markdown, tally
from .runner import SUMMARY_MD, load_summary

THIS_BUILD_PAGE = pathlib.Path("book/results/this_build.md")
EXECUTION_TABLE = pathlib.Path("book/results/execution_table.md")
COMMITTED_PAGE = pathlib.Path("book/results/committed.md")
RECORDS_DIR = pathlib.Path("book/results/runs")     # committed records: the only source of times


def release_tag() -> str:
    """The git tag of this version of the book: notebooks install their helpers from it."""
    from . import __version__

    return f"v{__version__}"


class BookError(RuntimeError):
    pass


def executed_errors(notebook: pathlib.Path) -> list[str]:
    """Error outputs left in an executed notebook (a book must not show them)."""
    cells = json.loads(notebook.read_text())["cells"]
    return [f"cell {i}: {out.get('ename')}: {out.get('evalue')}"
            for i, cell in enumerate(cells) for out in cell.get("outputs", [])
            if out.get("output_type") == "error"]


def stage(executed_dir: pathlib.Path, stage_dir: pathlib.Path, repo: pathlib.Path = REPO_ROOT) -> list[str]:
    """Lay out the book sources with the executed chapters found in ``executed_dir`` in
    ``stage_dir``; chapters not run there leave the table of contents and are listed as such on
    the reproduction page. Returns the numbers of the chapters staged."""
    present = [c for c in CHAPTERS if (executed_dir / f"{c.name}.ipynb").exists()]
    if not present:
        raise BookError(f"no executed chapter in {executed_dir}: run `ai4m run --out {executed_dir}` first")
    for chapter in present:
        errors = executed_errors(executed_dir / f"{chapter.name}.ipynb")
        if errors:
            raise BookError(f"chapter {chapter.number} ran with errors ({errors[0]}); fix it first")
    if stage_dir.exists():
        shutil.rmtree(stage_dir)
    stage_dir.mkdir(parents=True)
    shutil.copy2(repo / "_config.yml", stage_dir / "_config.yml")
    shutil.copytree(repo / "book", stage_dir / "book")
    (stage_dir / "notebooks").mkdir()
    measured = measured_times(repo / RECORDS_DIR)
    with_pdf = browser() is not None
    for chapter in present:
        executed = executed_dir / f"{chapter.name}.ipynb"
        note = runtime_note(measured.get(chapter.number, {})) + "\n\n" + downloads_note(chapter.name, with_pdf)
        _copy_folding_injected_parameters(executed, stage_dir / "notebooks" / executed.name, note)
        _write_downloads(stage_dir / "notebooks" / executed.name, stage_dir / "downloads")
    (stage_dir / EXECUTION_TABLE).write_text(execution_table(measured))
    (stage_dir / COMMITTED_PAGE).write_text(committed_records_page(repo / RECORDS_DIR))
    _write_toc(repo / "_toc.yml", stage_dir / "_toc.yml", {c.name for c in present})
    missing = [c for c in CHAPTERS if c not in present]
    _write_this_build_page(executed_dir, stage_dir / THIS_BUILD_PAGE, missing)
    config_path = stage_dir / "_config.yml"
    config = yaml.safe_load(config_path.read_text())
    config.setdefault("execute", {})["execute_notebooks"] = "off"  # show what the run recorded
    # Launch buttons open the notebooks of the release the helpers are pinned to, as the install
    # cell of every notebook does.
    config.setdefault("repository", {})["branch"] = release_tag()
    _serve_math_locally(stage_dir, config)
    config_path.write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
    return [c.number for c in present]


def _serve_math_locally(stage_dir: pathlib.Path, config: dict) -> None:
    """MathJax from the book's own files (as packaged by jupyter-server-mathjax), not from a CDN,
    so that equations render offline."""
    import jupyter_server_mathjax

    source = pathlib.Path(jupyter_server_mathjax.__file__).parent / "static"
    # Copied as it is next to the pages (not under _static, whose scripts the book would load).
    shutil.copytree(source, stage_dir / "_mathjax" / "mathjax")
    sphinx = config.setdefault("sphinx", {}).setdefault("config", {})
    sphinx["html_extra_path"] = ["_mathjax"]
    # The package's one combined configuration (TeX in, HTML-CSS out), with the one font family
    # it ships; paths are relative to _static.
    sphinx["mathjax_path"] = "../mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full"
    # Notebook pages mark their text "ignore" and their math "math" (for MathJax 3); the same
    # classes for MathJax 2.
    sphinx["mathjax2_config"] = {
        "HTML-CSS": {"availableFonts": ["STIX-Web"], "preferredFont": "STIX-Web", "webFont": "STIX-Web",
                     "imageFont": None},
        "tex2jax": {"processClass": "tex2jax_process|mathjax_process|math|output_area",
                    "ignoreClass": "tex2jax_ignore|mathjax_ignore"},
    }


def _write_toc(source: pathlib.Path, target: pathlib.Path, names: set[str]) -> None:
    """The table of contents without the chapters that were not run."""
    toc = yaml.safe_load(source.read_text())
    for part in toc["parts"]:
        part["chapters"] = [c for c in part["chapters"]
                            if not c["file"].startswith("notebooks/") or pathlib.Path(c["file"]).stem in names]
    toc["parts"] = [p for p in toc["parts"] if p["chapters"]]
    target.write_text(yaml.safe_dump(toc, sort_keys=False, allow_unicode=True))


def _copy_folding_injected_parameters(source: pathlib.Path, target: pathlib.Path, note: str = "") -> None:
    """Copy an executed notebook; the cell papermill injected (run-specific values) starts folded,
    and ``note`` (the chapter's measured run times) follows the title."""
    nb = json.loads(source.read_text())
    nb.get("metadata", {}).pop("widgets", None)   # live widget state: nothing a static page can use
    for cell in nb["cells"]:
        tags = cell.get("metadata", {}).get("tags", [])
        if "injected-parameters" in tags and "hide-input" not in tags:
            cell["metadata"]["tags"] = tags + ["hide-input"]
    if note:
        first = next(i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "markdown")
        nb["cells"].insert(first + 1, {"cell_type": "markdown", "id": "ai4m-runtime-and-downloads",
                                       "metadata": {}, "source": note})
    target.write_text(json.dumps(nb, indent=1))


def downloads_note(name: str, with_pdf: bool) -> str:
    """The line that offers a chapter for download: the executed notebook, its text twin, a PDF."""
    links = [f"{{download}}`the executed notebook <../downloads/{name}.ipynb>`",
             f"{{download}}`its text twin (.py) <../downloads/{name}.py>`"]
    if with_pdf:   # printed after the build (see write_pdfs); raw HTML, since it does not exist yet
        links.append(f'<a href="../pdf/{name}.pdf">a PDF of this chapter</a>')
    return "*Download*: " + " · ".join(links) + "."


def _write_downloads(staged_notebook: pathlib.Path, folder: pathlib.Path) -> None:
    import jupytext

    folder.mkdir(exist_ok=True)
    shutil.copy2(staged_notebook, folder / staged_notebook.name)
    nb = jupytext.read(staged_notebook)
    jupytext.write(nb, folder / staged_notebook.with_suffix(".py").name, fmt="py:percent")


def at_profile_defaults(record: dict) -> bool:
    """A run times its profile only at the profile's own sizes (seed, device and where the record
    goes aside); a run with other sizes says nothing about the profile's time."""
    chapter = next((c for c in CHAPTERS if c.number == record["chapter"]), None)
    if chapter is None:
        return False
    defaults = chapter.spec().defaults(record["profile"])
    free = {"seed", "device", "results_path"}
    return all(record["parameters"].get(k) == v for k, v in defaults.items() if k not in free)


def measured_times(records_dir: pathlib.Path) -> dict[str, dict[str, dict]]:
    """Chapter -> profile -> the latest committed record's time, device and date, counting only
    runs at the profile's own sizes."""
    out: dict[str, dict[str, dict]] = {}
    for path in sorted(records_dir.glob("*.results.json")) if records_dir.is_dir() else []:
        record = json.loads(path.read_text())
        if not at_profile_defaults(record):
            continue
        entry = {"seconds": record["timings_s"]["total"], "device": record["device"],
                 "date": str(record.get("started", ""))[:10], "record": path.name,
                 "verdicts": tally(record["claims"])}
        previous = out.setdefault(record["chapter"], {}).get(record["profile"])
        if previous is None or entry["date"] >= previous["date"]:
            out[record["chapter"]][record["profile"]] = entry
    return out


def _time_text(entry: dict | None) -> str:
    if not entry:
        return "not measured yet"
    return f"{entry['seconds']:.0f} s on {entry['device']} ({entry['date']})"


def runtime_note(measured: dict) -> str:
    """The line under a chapter's title: its measured run times, from committed records."""
    return (f"*Run time, measured (the notebook's own timer)*: `smoke` {_time_text(measured.get('smoke'))}; "
            f"`full` {_time_text(measured.get('full'))}. Every run: the "
            "[execution statistics](../book/execution.md).")


def execution_table(measured: dict) -> str:
    rows = ["| chapter | profile | time (s) | device | date | claims | record |", "|---|---|---|---|---|---|---|"]
    for chapter in CHAPTERS:
        for profile in ("smoke", "full"):
            e = measured.get(chapter.number, {}).get(profile)
            rows.append(f"| {chapter.heading} | {profile} | " + (
                f"{e['seconds']:.1f} | {e['device']} | {e['date']} | {e['verdicts']} | `{e['record']}` |" if e
                else "– | not measured yet | | | |"))
    return "\n".join(rows) + "\n"


def overrides(record: dict) -> dict:
    """The parameters a run set away from its profile's defaults (seed, device, path aside)."""
    chapter = next(c for c in CHAPTERS if c.number == record["chapter"])
    defaults = chapter.spec().defaults(record["profile"])
    free = {"seed", "device", "results_path"}
    return {k: v for k, v in record["parameters"].items() if k not in free and defaults.get(k) != v}


def committed_records_page(records_dir: pathlib.Path, profiles=("full",)) -> str:
    """Every committed record of the given profiles, and every study (a run of another profile
    with sizes changed from its defaults), newest first per chapter: what ran, where, how long,
    and its claims, straight from the file (the reproduction page cites nothing else). Runs of
    other profiles at their own sizes only time the profile: the execution page lists those."""
    paths = sorted(records_dir.glob("*.results.json")) if records_dir.is_dir() else []
    records = [(p, json.loads(p.read_text())) for p in paths]
    records = [(p, r) for p, r in records if r["profile"] in profiles or not at_profile_defaults(r)]
    if not records:
        return "No record of these profiles is committed yet.\n"
    out = []
    for chapter in CHAPTERS:
        mine = sorted(((p, r) for p, r in records if r["chapter"] == chapter.number),
                      key=lambda pr: str(pr[1].get("started", "")), reverse=True)
        for path, record in mine:
            changed = overrides(record)
            sizes = ("at the profile's own sizes" if not changed else "with " + ", ".join(
                f"`{k} = {json.dumps(v, ensure_ascii=False)}`" for k, v in changed.items()))
            code = record["versions"].get("code")
            out.append(f"### {chapter.heading}: `{path.name.removesuffix('.results.json')}`\n\n"
                       f"`{record['profile']}` profile on {record['device']}, "
                       f"{str(record.get('started', ''))[:10]}. "
                       f"Record `{path.name}`, {sizes}; {record['timings_s']['total']:.1f} s "
                       f"(the notebook's timer)" + (f"; code `{code}`" if code else "") + ".\n\n"
                       + claims_markdown(record["claims"]) + "\n")
    return "\n".join(out)


def _write_this_build_page(executed_dir: pathlib.Path, page: pathlib.Path, missing=()) -> None:
    summary = load_summary(executed_dir)
    table = (executed_dir / SUMMARY_MD).read_text() if (executed_dir / SUMMARY_MD).exists() else ""
    not_run = ("\n\nNot run for this build: " + "; ".join(c.heading for c in missing) + ".") if missing else ""
    page.write_text(
        "The chapters on this site were executed for this build; their run, chapter by chapter "
        f"(summary updated {summary.get('updated', 'at an unknown time')}):\n\n{table}{not_run}\n")


def build(executed_dir: pathlib.Path, out_root: pathlib.Path = REPO_ROOT,
          repo: pathlib.Path = REPO_ROOT) -> pathlib.Path:
    """Stage and build; returns the path of ``index.html``. Any Sphinx warning fails the build."""
    stage_dir = out_root / "_build" / "book_src"
    stage(executed_dir, stage_dir, repo)
    # Sphinx leaves the pages of an earlier build in place: a chapter not in this build would
    # stay in the book as a ghost, linked from nowhere and found by the search
    shutil.rmtree(out_root / "_build" / "html", ignore_errors=True)
    # Jupyter Book 1.x has no `python -m` entry; call its CLI in this interpreter.
    cmd = [sys.executable, "-c", "from jupyter_book.cli.main import main; main()",
           "build", str(stage_dir), "--path-output",
           str(out_root), "-W", "-n", "--keep-going", "--all"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise BookError("the book did not build:\n" + proc.stdout[-4000:] + proc.stderr[-4000:])
    index = out_root / "_build" / "html" / "index.html"
    if not index.exists():
        raise BookError(f"the build finished but {index} is missing")
    if browser() is not None:
        write_pdfs(index.parent, [c for c in CHAPTERS if (stage_dir / "notebooks" / f"{c.name}.ipynb").exists()])
    return index


# -- PDF: the HTML pages printed by a headless Chromium (Debian's package), where one is installed --
BOOK_PDF = "trustworthy-ai-for-media.pdf"


def browser() -> str | None:
    return next((path for name in ("chromium", "chromium-browser", "google-chrome")
                 if (path := shutil.which(name))), None)


def headless(profile: str, *args: str) -> list[str]:
    """A headless Chromium command line with a throw-away profile and nothing fetched of its own."""
    return [browser(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={profile}", *args]


def print_pdf(page: pathlib.Path, out: pathlib.Path) -> None:
    """One page to PDF, after its equations are typeset (a few seconds of page time)."""
    import tempfile

    with tempfile.TemporaryDirectory() as profile:
        proc = subprocess.run(
            headless(profile, "--no-pdf-header-footer", "--virtual-time-budget=20000", f"--print-to-pdf={out}",
                     page.resolve().as_uri()),
            capture_output=True, text=True, timeout=180)
    if proc.returncode != 0 or not out.exists():
        raise BookError(f"printing {page.name} to PDF failed: {proc.stderr[-500:]}")


def write_pdfs(html: pathlib.Path, chapters) -> pathlib.Path:
    """A PDF per chapter and the book's PDF (the introduction and the chapters, in order)."""
    from pypdf import PdfWriter

    folder = html / "pdf"
    folder.mkdir(exist_ok=True)
    parts = [(html / "index.html", folder / "introduction.pdf")]
    parts += [(html / "notebooks" / f"{c.name}.html", folder / f"{c.name}.pdf") for c in chapters]
    book_pdf = PdfWriter()
    for page, out in parts:
        print_pdf(page, out)
        book_pdf.append(str(out))
    with open(folder / BOOK_PDF, "wb") as f:
        book_pdf.write(f)
    return folder / BOOK_PDF
