"""`ai4m`: list chapters, run them with papermill under a profile, build the book, run a benchmark."""
from __future__ import annotations

import argparse
import os
import pathlib
import sys

from . import book, runner
from .chapters import REPO_ROOT, find
from .params import PROFILES, ParameterError

DEFAULT_RUN_DIR = REPO_ROOT / "_build" / "executed"


class _Parser(argparse.ArgumentParser):
    """Usage mistakes get the same one line as bad parameters (``ai4m run -h`` shows the usage)."""

    def error(self, message: str):
        self.exit(2, f"ai4m: error: {message} (see '{self.prog} -h')\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="ai4m", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    lst = sub.add_parser("list", help="chapters, their parameters and budgets")
    lst.add_argument("chapters", nargs="*", help="numbers or slugs (default: all)")

    run = sub.add_parser("run", help="execute chapters with papermill")
    run.add_argument("chapters", nargs="*", help="numbers or slugs (default: all)")
    run.add_argument("--profile", choices=PROFILES, default="smoke")
    run.add_argument("-p", "--parameter", nargs=2, action="append", default=[],
                     metavar=("NAME", "VALUE"),
                     help="override a parameter; 'NN:NAME' scopes it to chapter NN")
    run.add_argument("--out", type=pathlib.Path, default=DEFAULT_RUN_DIR,
                     help="folder for executed notebooks, results records and the summary")
    run.add_argument("--keep-going", action="store_true", help="run the other chapters after a failure")
    run.add_argument("--cell-timeout", type=int, default=None, help="seconds a cell may take")

    course = sub.add_parser("course", help="prepare, run and collect chapters for a whole class")
    steps = course.add_subparsers(dest="step", required=True, parser_class=_Parser)
    make = steps.add_parser("make", help="a folder of parameterised chapters per student, and a manifest")
    make.add_argument("roster", type=pathlib.Path, help="CSV with a 'student' column")
    make.add_argument("grid", type=pathlib.Path, help="YAML: profile, assign, seed, chapters and their knobs")
    make.add_argument("--out", type=pathlib.Path, required=True, help="the course folder (must not hold one)")
    crun = steps.add_parser("run", help="run every prepared chapter that has no valid record yet")
    crun.add_argument("course", type=pathlib.Path)
    crun.add_argument("--executor", choices=("local", "ray"), default="local")
    crun.add_argument("--jobs", type=int, default=1, help="runs at a time (local) or CPUs of a local Ray")
    crun.add_argument("--address", default=None, help="a Ray cluster's address (default: a local Ray)")
    crun.add_argument("--cpus-per-run", type=float, default=1.0)
    crun.add_argument("--gpus-per-run", type=float, default=0.0)
    coll = steps.add_parser("collect", help="one table, a figure per chapter and a report")
    coll.add_argument("course", type=pathlib.Path)
    coll.add_argument("--handins", type=pathlib.Path, default=None,
                      help="a folder per student of handed-in notebooks and records (checked for edits)")

    bk = sub.add_parser("book", help="build the HTML book into _build/html")
    bk.add_argument("--from", dest="from_dir", type=pathlib.Path, default=None,
                    help="executed chapters to build from (default: run every chapter in smoke first)")
    bk.add_argument("--check", action="store_true",
                    help="then load every page in headless Chromium: script errors, broken links, figures, search")
    bench = sub.add_parser("bench", help="the benchmarking platform: serve it, run its workers, submit")
    acts = bench.add_subparsers(dest="act", required=True, parser_class=_Parser)
    serve = acts.add_parser("serve", help="the HTTP service over a platform folder")
    create = acts.add_parser("create", help="a competition from a bundle; prints its id")
    create.add_argument("--slug", required=True)
    create.add_argument("--bundle", type=pathlib.Path, required=True, help="the competition's YAML bundle")
    reg = acts.add_parser("register", help="a participant; prints their token (shown only this once)")
    reg.add_argument("--name", required=True)
    reg.add_argument("--organiser", action="store_true")
    work = acts.add_parser("work", help="run the queued submissions, then stop")
    work.add_argument("--jobs", type=int, default=2)
    work.add_argument("--backend", choices=("local", "ray"), default="local")
    for act in (serve, create, reg, work):
        act.add_argument("--data-dir", type=pathlib.Path, required=True, help="the platform's folder")
        act.add_argument("--url", default=os.environ.get("AI4M_BENCH_DB"),
                         help="database URL (default: $AI4M_BENCH_DB, else SQLite in the data folder; the "
                              "variable keeps a password off the command line)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    submit = acts.add_parser("submit", help="send a submission to a server; prints its id")
    submit.add_argument("--competition", required=True)
    submit.add_argument("--phase", required=True)
    submit.add_argument("--kind", choices=("code", "result"), required=True)
    submit.add_argument("--label", default="")
    submit.add_argument("file", type=pathlib.Path, help="a Python file with fit/predict, or a CSV 'id,label'")
    status = acts.add_parser("status", help="a submission's status and scores (JSON)")
    status.add_argument("id", type=int)
    status.add_argument("--logs", action="store_true", help="its logs too")
    for act in (submit, status):
        act.add_argument("--server", required=True, help="the service's URL, e.g. http://127.0.0.1:8000")
        act.add_argument("--token", required=True, help="yours (write --token=T if it starts with '-')")
    return parser


class BenchError(Exception):
    """A refusal from the platform or the server, or an unreachable server: one line."""


def _http(args, method: str, path: str, **kwargs):
    """One request to the service; its JSON, or :class:`BenchError` with the server's one line."""
    import httpx

    try:
        reply = httpx.request(method, args.server.rstrip("/") + path, timeout=60,
                              headers={"Authorization": f"Bearer {args.token}"}, **kwargs)
    except httpx.HTTPError as err:
        raise BenchError(f"cannot reach {args.server}: {err}") from None
    if reply.is_error:
        try:
            detail = reply.json()["detail"]
        except (ValueError, KeyError, TypeError):
            detail = reply.text.strip() or reply.reason_phrase
        if isinstance(detail, list):                 # FastAPI's validation errors
            detail = "; ".join(f"{'.'.join(map(str, d['loc'][1:]))}: {d['msg']}" for d in detail)
        raise BenchError(f"{reply.status_code} {detail}")
    return reply.json()


def cmd_bench(args) -> int:
    import json

    from .benchmarking.bundle import BundleError
    from .benchmarking.platform import Platform, Refused, run_workers

    try:
        if args.act == "submit":
            try:
                payload = args.file.read_bytes()
            except OSError as err:
                raise BenchError(f"cannot read {args.file}: {err.strerror}") from None
            reply = _http(args, "POST", f"/competitions/{args.competition}/submissions",
                          files={"file": (args.file.name, payload)},
                          data={"phase": args.phase, "kind": args.kind, "label": args.label})
            print(reply["id"])
        elif args.act == "status":
            out = _http(args, "GET", f"/submissions/{args.id}")
            if args.logs:
                out["logs"] = _http(args, "GET", f"/submissions/{args.id}/logs")
            print(json.dumps(out, indent=2))
        elif args.act == "serve":
            from .benchmarking.service import serve

            serve(args.data_dir, args.host, args.port, args.url)
        else:
            platform = Platform(args.data_dir, args.url)
            if args.act == "create":
                try:
                    text = args.bundle.read_text()
                except OSError as err:
                    raise BenchError(f"cannot read {args.bundle}: {err.strerror}") from None
                print(platform.create(args.slug, text))
            elif args.act == "register":
                print(platform.register(args.name, args.organiser))
            else:
                if args.jobs < 1:
                    raise BenchError("--jobs must be at least 1")
                lost = platform.reap()        # submissions of workers that died: failed, "worker lost"
                done = run_workers(platform, args.jobs, args.backend)
                print(f"ran {len(done)} submission(s)" + (f"; {len(lost)} lost by dead workers" if lost else ""))
    except (BenchError, Refused, BundleError) as err:
        print(f"ai4m: error: {err}", file=sys.stderr)
        return 1
    return 0


def cmd_list(args) -> int:
    for chapter in find(args.chapters):
        spec = chapter.spec()
        budgets = ", ".join(f"{p} {s} s" for p, s in chapter.budget_s.items())
        print(f"{chapter.heading}  ({chapter.slug})")
        print(f"    notebook {chapter.notebook().relative_to(REPO_ROOT)}; extra [{chapter.extra}]; "
              f"budget {budgets}")
        for problem in runner.check_parameter_cell(chapter, spec):
            print(f"    warning: {problem}")
        for name, p in spec.params.items():
            defaults = f"smoke={p.default('smoke')!r} full={p.default('full')!r}"
            print(f"    {name:<22} {p.describe():<34} {defaults}  {p.help}")
    return 0


def cmd_run(args) -> int:
    chapters = find(args.chapters)
    overrides = runner.parse_overrides([tuple(p) for p in args.parameter], chapters)
    runner.check_all(chapters, args.profile, overrides)
    args.out = runner.check_out_dir(args.out)
    entries = runner.run(chapters, args.profile, overrides, args.out, keep_going=args.keep_going,
                         cell_timeout=args.cell_timeout)
    failed = [e["chapter"] for e in entries if e["status"] != "ok"]
    print(f"summary: {args.out / runner.SUMMARY_MD}")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def cmd_course(args) -> int:
    from . import course

    if args.step == "make":
        manifest = course.make(args.roster, args.grid, args.out)
        n = sum(len(s["chapters"]) for s in manifest["students"].values())
        print(f"{len(manifest['students'])} students, {n} notebooks: {args.out / course.MANIFEST}")
        return 0
    if args.step == "run":
        if args.jobs < 1 or args.cpus_per_run <= 0 or args.gpus_per_run < 0:
            raise ParameterError("--jobs must be at least 1, --cpus-per-run above 0, --gpus-per-run not negative")
        entries = course.run(args.course, args.executor, args.jobs, args.address,
                             cpus_per_run=args.cpus_per_run, gpus_per_run=args.gpus_per_run)
        failed = [f"{e['student']}/{e['chapter']}" for e in entries if e["status"] != "ok"]
        if failed:
            print(f"failed: {', '.join(failed)}", file=sys.stderr)
            return 1
        return 0
    table = course.collect(args.course, args.handins)
    print(f"{(table['status'] == 'ok').sum()} of {len(table)} runs collected: "
          f"{args.course / course.REPORT_DIR / 'report.md'}")
    return 0


def cmd_book(args) -> int:
    executed = args.from_dir
    if executed is not None and not executed.is_dir():
        raise ParameterError(f"--from {executed} is not a folder of executed chapters")
    if executed is None:
        executed = DEFAULT_RUN_DIR
        entries = runner.run(find(None), "smoke", {}, executed)
        if any(e["status"] != "ok" for e in entries):
            print("a chapter failed; the book was not built", file=sys.stderr)
            return 1
    index = book.build(executed)
    print(f"book: {index}")
    if args.check:
        from . import book_check

        reason = book_check.available()
        if reason:
            raise book.BookError(f"cannot check the book in a browser: {reason}")
        built = {p.stem for p in (index.parent / "notebooks").glob("*.html")}
        problems = book_check.check(index.parent, [c for c in find(None) if c.name in built])
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        if problems:
            print(f"the browser check found {len(problems)} problem(s)", file=sys.stderr)
            return 1
        print("browser check: every page loads cleanly")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    handlers = {"list": cmd_list, "run": cmd_run, "course": cmd_course, "book": cmd_book, "bench": cmd_bench}
    try:
        return handlers[args.command](args)
    except (ParameterError, KeyError) as err:
        message = err.args[0] if err.args else str(err)
        print(f"ai4m: error: {message}", file=sys.stderr)
        return 2
    except book.BookError as err:
        print(f"ai4m: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
