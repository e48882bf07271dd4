"""A Sphinx extension the book's build loads (``_config.yml``, ``extra_extensions``).

sphinx-thebe and sphinx-togglebutton register their inline configuration scripts each time the
environment reads documents; the bibliography makes Sphinx read twice, so every page declared
``const THEBE_JS_URL`` twice, a script error in every reader's browser (found by the book's
browser check). Identical script entries are kept once per page.
"""
from __future__ import annotations


def _script_key(js) -> tuple:
    attributes = getattr(js, "attributes", {}) or {}
    # an inline script is registered with filename None once and "" the other time
    return str(getattr(js, "filename", js) or ""), tuple(sorted((k, str(v)) for k, v in attributes.items()))


def drop_duplicate_scripts(app, pagename, templatename, context, doctree) -> None:
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, unique = set(), []
    for js in scripts:
        key = _script_key(js)
        if key not in seen:
            seen.add(key)
            unique.append(js)
    scripts[:] = unique          # in place: handlers that run later (MathJax) add to this very list


def setup(app):
    # first: the event stops at the first handler that returns a template name
    app.connect("html-page-context", drop_duplicate_scripts, priority=100)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
