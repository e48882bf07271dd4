"""The built book as a reader's browser sees it: served over HTTP on localhost and loaded, page by
page, in headless Chromium. Each page's scripts must run without an uncaught error, every link and
resource it points to inside the book must answer, every chapter page must show figures, and the
search page must find a chapter from a word of its title, and a page with equations must
typeset them."""
from __future__ import annotations

import contextlib
import functools
import html.parser
import http.server
import pathlib
import re
import subprocess
import tempfile
import threading
import urllib.error
import urllib.parse
import urllib.request

from .book import browser, headless

UNCAUGHT = re.compile(r'CONSOLE[^\]]*\] "(Uncaught [^"]*)"')
SKIP = ("_static/", "_sources/", "_downloads/", "_images/", "genindex", "search.html")


class _Links(html.parser.HTMLParser):
    """The href and src of a page, and its figures."""

    def __init__(self):
        super().__init__()
        self.targets, self.images = [], 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for key in ("href", "src"):
            if attrs.get(key):
                self.targets.append(attrs[key])
        if tag == "img":
            self.images += 1


@contextlib.contextmanager
def serve(root: pathlib.Path):
    """A real HTTP server for ``root`` on a free localhost port, for the duration of the block."""
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = _QuietServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class _QuietServer(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        pass          # a browser that closes a connection early is not a fault of the book


def load(url: str, wait_ms: int = 4000) -> tuple[str, list[str]]:
    """The page's DOM after its scripts ran, and its uncaught script errors."""
    with tempfile.TemporaryDirectory() as profile:
        proc = subprocess.run(headless(profile, "--enable-logging=stderr", "--log-level=0",
                                       f"--virtual-time-budget={wait_ms}", "--dump-dom", url),
                              capture_output=True, text=True, timeout=120)
    return proc.stdout, UNCAUGHT.findall(proc.stderr)


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as err:
        return err.code


def check(html_root: pathlib.Path, chapters) -> list[str]:
    """Every problem found (empty: the book works in a browser). ``chapters`` are the chapters
    built into this book (their pages must show figures and be found by the search)."""
    html_root = pathlib.Path(html_root)
    pages = sorted(p.relative_to(html_root).as_posix() for p in html_root.rglob("*.html")
                   if not p.relative_to(html_root).as_posix().startswith(SKIP))
    problems, checked = [], {}
    with serve(html_root) as base:
        for page in pages:
            source = (html_root / page).read_text(errors="replace")
            redirect = re.match(r'\s*<meta http-equiv="Refresh" content="0; url=([^"]+)"', source)
            if redirect:                                          # the root page only forwards
                target = urllib.parse.urljoin(base + page, redirect.group(1))
                if _status(target) != 200:
                    problems.append(f"{page}: forwards to a missing page {redirect.group(1)}")
                continue
            dom, errors = load(base + page)
            problems += [f"{page}: {e}" for e in errors]
            links = _Links()
            links.feed(dom)
            if page.startswith("notebooks/") and links.images == 0:
                problems.append(f"{page}: shows no figure")
            if 'class="math' in source and "MathJax-Element" not in dom:     # MathJax's typeset output
                problems.append(f"{page}: its equations are not typeset (no MathJax output)")
            for target in links.targets:
                url = urllib.parse.urljoin(base + page, target).split("#")[0].split("?")[0]
                if not url.startswith(base):
                    continue                                     # outside the book: not ours to check
                if url not in checked:
                    checked[url] = _status(url)
                if checked[url] != 200:
                    problems.append(f"{page}: broken link {target} ({checked[url]})")
        for chapter in chapters:
            word = max(re.findall(r"[A-Za-z]{5,}", chapter.title), key=len)
            dom, errors = load(f"{base}search.html?q={urllib.parse.quote(word)}", wait_ms=8000)
            problems += [f"search.html: {e}" for e in errors]
            if f"{chapter.name}.html" not in dom:
                problems.append(f"the search for {word!r} does not find chapter {chapter.number}")
    return problems


def available() -> str | None:
    """Why the check cannot run here, or None."""
    return None if browser() else "no Chromium on this machine (Debian: apt install chromium)"
