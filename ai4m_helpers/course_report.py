"""Collecting a course: the records of the teacher's runs, or the students' hand-ins after a check
that nothing was edited after the run, as one table, a figure per chapter and a report."""
from __future__ import annotations

import ast
import pathlib
from typing import Sequence

from .chapters import CHAPTERS, Chapter
from .course import MANIFEST, REPORT_DIR, RUNS, load_manifest, tasks
from .params import ParameterError
from .results import load_record, parameters_digest, record_digest


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


def check_handin(record: dict, notebook: pathlib.Path) -> str | None:
    """Why a handed-in record cannot be accepted, or None. The record must hash to the digest its
    run wrote (any edit to parameters, metrics or claims changes it), and the executed notebook,
    which must be handed in beside it, must carry the same parameters. This catches mistakes and
    casual edits; it is not a signature."""
    if not record.get("record_sha256") or not record.get("parameters_sha256"):
        return "the record carries no digest (made by an older version?)"
    if parameters_digest(record["parameters"]) != record["parameters_sha256"]:
        return "the record's parameters were edited after the run"
    if record_digest(record) != record["record_sha256"]:
        return "the record was edited after the run"
    if not notebook.exists():
        return f"the executed notebook {notebook.name} was not handed in"
    cell = notebook_parameters(notebook)
    edited = sorted(k for k, v in cell.items()
                    if k in record["parameters"] and v is not None and v != record["parameters"][k])
    if edited:
        return f"the notebook's parameters differ from the record's: {edited}"
    return None


def _claim_named(claims: list, name: str | None):
    for c in claims:
        if name is None and isinstance(c.get("effect"), (int, float)) or c.get("name") == name:
            return c
        found = _claim_named(c.get("parts", []), name)
        if found:
            return found
    return None


def _scalar_metrics(record: dict) -> dict:
    return {f"metric: {k}": v for k, v in record.get("metrics", {}).items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)}


def _row(task, manifest: dict, record: dict | None, status: str, main_claim: str | None) -> dict:
    number = task.chapter.number
    row = {"student": task.student, "chapter": number, "status": status,
           **{k: task.parameters.get(k) for k in manifest["chapters"][number]["varied"]}}
    if record:
        claim = _claim_named(record["claims"], main_claim)
        row.update({"main claim": claim["name"] if claim else None,
                    "effect": claim.get("effect") if claim else None,
                    "time_s": record["timings_s"].get("total"),
                    "verdicts": ", ".join(c["verdict"] for c in record["claims"]), **_scalar_metrics(record)})
    return row


def _read(task, source: pathlib.Path, handins: bool) -> tuple[dict | None, str]:
    """The task's record and its status: ok, not run / no hand-in, failed, or refused (why)."""
    folder = source / task.student if handins else task.run_dir
    record_path = folder / task.record_path.name
    if not record_path.exists():
        if not handins and _failed(task.run_dir, task.chapter):
            return None, "failed"
        return None, "no hand-in" if handins else "not run"
    try:
        record = load_record(record_path)
        problem = check_handin(record, folder / f"{task.chapter.name}.ipynb") if handins else None
    except Exception as err:    # a hand-in may be anything; one bad file must not stop the class's report
        return None, f"refused: unreadable ({type(err).__name__})"
    if problem:
        return None, f"refused: {problem}"
    if any(record["parameters"].get(k) != v for k, v in task.parameters.items()):
        return None, "refused: not the assigned parameters"
    return record, "ok"


def collect(course: pathlib.Path, handins: pathlib.Path | None = None, chapters: Sequence[Chapter] = CHAPTERS):
    """One row per student and chapter: the knobs that vary, status, the main claim's effect (one
    claim per chapter, named by the first complete record), verdicts and scalar metrics. Records
    come from the course's runs, or from ``handins`` (a folder per student) after the tamper
    check. Writes ``report/`` (table, figures, Markdown and HTML) and returns the table."""
    import pandas as pd

    course = pathlib.Path(course)
    manifest = load_manifest(course)
    if handins is not None and not pathlib.Path(handins).is_dir():
        raise ParameterError(f"--handins {handins} is not a folder")
    source = pathlib.Path(handins) if handins else course
    read = [(t, *_read(t, source, handins is not None)) for t in tasks(course, chapters)]
    main = {}
    for task, record, _ in read:
        if record and task.chapter.number not in main:
            claim = _claim_named(record["claims"], None)
            main[task.chapter.number] = claim["name"] if claim else None
    rows = [_row(t, manifest, r, status, main.get(t.chapter.number)) for t, r, status in read]
    table = pd.DataFrame(rows)
    unmatched = []
    if handins:
        known = {s.lower() for s in manifest["students"]}
        unmatched = sorted(p.name for p in pathlib.Path(handins).iterdir() if p.is_dir() and p.name.lower() not in known)
    report(table, manifest, course / REPORT_DIR, unmatched)
    return table


def _failed(run_dir: pathlib.Path, chapter: Chapter) -> bool:
    from .runner import load_summary

    try:
        entries = load_summary(run_dir)["chapters"]
    except (OSError, ValueError):       # a summary cut short by a killed run
        return False
    return entries.get(chapter.name, {}).get("status") == "failed"


def _x_knob(varied: list[str]) -> str | None:
    """The knob a chapter's figure is drawn against: the first varied one that is not the seed."""
    return next((k for k in varied if k != "seed"), varied[0] if varied else None)


def report(table, manifest: dict, out: pathlib.Path, unmatched: Sequence[str] = ()) -> pathlib.Path:
    """``table.csv``, a figure per chapter and ``report.md`` / ``report.html`` in ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "table.csv", index=False)
    lines = [f"# Course report ({manifest['profile']} profile, {len(manifest['students'])} students)", ""]
    if unmatched:
        lines += [f"Hand-in folders that match no student: {', '.join(unmatched)}", ""]
    for number, info in manifest["chapters"].items():
        part = table[table["chapter"] == number].dropna(axis=1, how="all")
        lines += [f"## {number} — {info['title']}", ""]
        ok = part[part["status"] == "ok"]
        lines.append(f"{len(ok)} of {len(part)} runs complete.")
        flagged = part[part["status"] != "ok"]
        if len(flagged):
            lines.append("Flagged: " + "; ".join(f"{r.student} ({r.status})" for r in flagged.itertuples()))
        x = _x_knob(info["varied"])
        if len(ok) and x and "effect" in ok and ok["effect"].notna().any():
            fig, ax = plt.subplots(figsize=(4.5, 3))
            numeric = all(isinstance(v, (int, float)) for v in ok[x])
            ax.scatter(ok[x] if numeric else ok[x].astype(str), ok["effect"])
            ax.set_xlabel(x)
            ax.set_ylabel("effect of the main claim")
            ax.set_title(str(ok["main claim"].dropna().iloc[0])[:60], fontsize=8)
            fig.tight_layout()
            fig.savefig(out / f"{number}.png", dpi=100)
            plt.close(fig)
            lines += ["", f"![{number}]({number}.png)"]
        shown = part.drop(columns="chapter").astype(str).apply(lambda col: col.str.replace("|", "/"))
        lines += ["", shown.to_markdown(index=False), ""]
    text = "\n".join(lines) + "\n"
    (out / "report.md").write_text(text)
    (out / "report.html").write_text(_html(text))
    return out / "report.md"


def _html(markdown_text: str) -> str:
    """The report as a self-contained HTML page; raw HTML in the text (a hand-in's claim names
    are the students' text) is escaped, not passed through."""
    try:
        from markdown_it import MarkdownIt

        body = MarkdownIt("commonmark", {"html": False}).enable("table").render(markdown_text)
    except ImportError:   # plain text, still readable
        import html

        body = f"<pre>{html.escape(markdown_text)}</pre>"
    return f"<!doctype html><meta charset='utf-8'><title>Course report</title>\n{body}"


__all__ = ["MANIFEST", "RUNS", "check_handin", "collect", "notebook_parameters", "report"]
