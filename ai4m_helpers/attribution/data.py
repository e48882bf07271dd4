"""Text corpora for the model zoo, all available offline.

Pre-training corpora (one per base family) come from the Python standard library on disk (its
source code, and its docstrings read with ``ast`` without importing anything) or from small
generators (dialogue turns, two made-up languages, tables and arithmetic). Downstream corpora, on
which descendants are fine-tuned, are generated from templates: product reviews, SQL, short poems,
recipes, headlines, e-mails. Every generator is a function of a seeded ``random.Random``.
"""
from __future__ import annotations

import ast
import functools
import pathlib
import random
import sysconfig

# ---------------------------------------------------------------- the standard library on disk


@functools.lru_cache(maxsize=None)
def _stdlib_files() -> tuple[pathlib.Path, ...]:
    root = pathlib.Path(sysconfig.get_paths()["stdlib"])
    skip = ("test", "site-packages", "idlelib", "lib2to3", "tkinter", "turtledemo")
    return tuple(sorted(p for p in root.rglob("*.py")
                        if not any(part in skip for part in p.relative_to(root).parts)))


def _read(path: pathlib.Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError):
        return ""


def stdlib_code(rng: random.Random, n_chars: int) -> str:
    """Source code of standard-library modules, comment-stripped of licence headers."""
    files = list(_stdlib_files())
    rng.shuffle(files)
    chunks, size = [], 0
    for path in files:
        lines = [ln for ln in _read(path).splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
        text = "\n".join(lines[:200])
        chunks.append(text)
        size += len(text)
        if size >= n_chars:
            break
    return "\n".join(chunks)[:n_chars]


def _docstrings(path: pathlib.Path) -> list[str]:
    try:
        tree = ast.parse(_read(path))
    except (SyntaxError, ValueError):
        return []
    nodes = [tree] + [n for n in ast.walk(tree)
                      if isinstance(n, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))]
    docs = (ast.get_docstring(n) for n in nodes)
    return [" ".join(d.split()) for d in docs if d and len(d) > 40]


def stdlib_docstrings(rng: random.Random, n_chars: int) -> str:
    """English technical prose: docstrings of standard-library modules, classes and functions."""
    files = list(_stdlib_files())
    rng.shuffle(files)
    docs, size = [], 0
    for path in files:
        for doc in _docstrings(path):
            docs.append(doc)
            size += len(doc)
        if size >= n_chars:
            break
    return "\n".join(docs)[:n_chars]


# ---------------------------------------------------------------- generated pre-training corpora

_NAMES = ["Ana", "Ben", "Chloe", "Dimitri", "Eva", "Farid", "Giulia", "Hugo", "Ines", "Jonas"]
_TOPICS = ["the weather", "the match", "dinner", "the new phone", "my exam", "the concert",
           "your trip", "the film", "work", "the garden", "the election", "the train"]
_OPENERS = ["hi {n}, how are you?", "hey, did you hear about {t}?", "good morning! any news on {t}?",
            "{n}, are you free later?", "what do you think of {t}?", "so, about {t}...",
            "quick question about {t}", "how was {t} yesterday?"]
_REPLIES = ["i'm fine, thanks! and you?", "not yet, tell me more", "honestly it was great",
            "lol no way", "yes, around six works for me", "i think it was a bit too long",
            "sorry, i can't today", "that sounds fun, count me in", "hmm, not sure, let me check",
            "haha same here", "really? i didn't know that", "it was ok, nothing special"]


def dialogue(rng: random.Random, n_chars: int) -> str:
    """Short chat exchanges between two speakers, lower case, with turn markers."""
    lines, size = [], 0
    while size < n_chars:
        a, b = rng.sample(_NAMES, 2)
        turns = [f"{a}: " + rng.choice(_OPENERS).format(n=b, t=rng.choice(_TOPICS))]
        for k in range(rng.randint(1, 4)):
            speaker = b if k % 2 == 0 else a
            turns.append(f"{speaker}: {rng.choice(_REPLIES)}")
        text = "\n".join(turns) + "\n"
        lines.append(text)
        size += len(text)
    return "".join(lines)[:n_chars]


# Two made-up languages, each with its own syllables and function words: the analogue of the
# multilingual pre-training data of some base models.
_LANGS = {
    "vessa": (["ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "ze", "qua"], ["en", "ko", "ta", "su"]),
    "drumal": (["brak", "dun", "gor", "hult", "kra", "mord", "tusk", "vrel"], ["og", "ik", "dar"]),
}


def _pseudo_sentence(rng: random.Random, lang: str) -> str:
    syllables, small = _LANGS[lang]
    words = []
    for _ in range(rng.randint(4, 10)):
        if rng.random() < 0.3:
            words.append(rng.choice(small))
        else:
            words.append("".join(rng.choice(syllables) for _ in range(rng.randint(1, 3))))
    return words[0].capitalize() + " " + " ".join(words[1:]) + rng.choice([".", ".", "!", "?"])


def polyglot(rng: random.Random, n_chars: int) -> str:
    """Sentences in two made-up languages, paragraph by paragraph."""
    out, size = [], 0
    while size < n_chars:
        lang = rng.choice(list(_LANGS))
        para = " ".join(_pseudo_sentence(rng, lang) for _ in range(rng.randint(2, 5))) + "\n"
        out.append(para)
        size += len(para)
    return "".join(out)[:n_chars]


def tables(rng: random.Random, n_chars: int) -> str:
    """CSV rows, dates and arithmetic: a numbers-heavy corpus."""
    out, size = [], 0
    while size < n_chars:
        kind = rng.random()
        if kind < 0.4:
            line = f"{rng.randint(1, 99)} + {rng.randint(1, 99)} = "
            a, b = map(int, line[:-3].split(" + "))
            line += f"{a + b}"
        elif kind < 0.7:
            line = (f"{rng.randint(2000, 2026)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d},"
                    f"{rng.choice(['north', 'south', 'east', 'west'])},{rng.uniform(0, 999):.2f}")
        else:
            line = ",".join(str(rng.randint(0, 500)) for _ in range(rng.randint(3, 6)))
        out.append(line + "\n")
        size += len(line) + 1
    return "".join(out)[:n_chars]


SOURCES = {
    "docs": stdlib_docstrings,
    "code": stdlib_code,
    "dialogue": dialogue,
    "polyglot": polyglot,
    "tables": tables,
}


def mixture(rng: random.Random, n_chars: int) -> str:
    """A web-like mixture of every pre-training source (the analogue of The Pile)."""
    parts = [SOURCES[name](random.Random(rng.random()), n_chars // len(SOURCES))
             for name in sorted(SOURCES)]
    paragraphs = [p for part in parts for p in part.split("\n") if p.strip()]
    rng.shuffle(paragraphs)
    return "\n".join(paragraphs)[:n_chars]


PRETRAINING = {**SOURCES, "mixture": mixture}

# ---------------------------------------------------------------- downstream (fine-tuning) tasks

_PRODUCTS = ["headphones", "blender", "novel", "hotel", "laptop", "camera", "jacket", "game"]
_ADJ_GOOD = ["excellent", "great", "lovely", "solid", "superb"]
_ADJ_BAD = ["awful", "flimsy", "boring", "noisy", "overpriced"]


def reviews(rng: random.Random) -> str:
    good = rng.random() < 0.5
    adj = rng.choice(_ADJ_GOOD if good else _ADJ_BAD)
    stars = rng.randint(4, 5) if good else rng.randint(1, 2)
    return (f"Review: the {rng.choice(_PRODUCTS)} is {adj}. "
            f"{'Would buy again' if good else 'Returned it after a week'}. Rating: {stars}/5")


_TABLES = ["users", "orders", "items", "events", "stock"]
_COLS = ["id", "name", "price", "created_at", "status", "qty"]


def sql(rng: random.Random) -> str:
    cols = ", ".join(rng.sample(_COLS, rng.randint(1, 3)))
    return (f"SELECT {cols} FROM {rng.choice(_TABLES)} WHERE {rng.choice(_COLS)} > {rng.randint(0, 99)} "
            f"ORDER BY {rng.choice(_COLS)} {'DESC' if rng.random() < 0.5 else 'ASC'};")


_NOUNS = ["moon", "river", "heart", "city", "rain", "light", "road", "sea", "night", "fire"]
_VERBS = ["sings", "burns", "falls", "waits", "dreams", "breaks", "shines", "calls"]


def poems(rng: random.Random) -> str:
    lines = [f"oh {rng.choice(_NOUNS)}, the {rng.choice(_NOUNS)} {rng.choice(_VERBS)}"
             for _ in range(rng.randint(2, 4))]
    return " /\n".join(lines) + " ~"


_FOODS = ["flour", "sugar", "butter", "eggs", "rice", "onions", "tomatoes", "garlic"]


def recipes(rng: random.Random) -> str:
    steps = [f"{rng.choice(['Mix', 'Stir', 'Chop', 'Bake', 'Boil'])} {rng.randint(1, 500)} g of "
             f"{rng.choice(_FOODS)} for {rng.randint(2, 40)} minutes." for _ in range(rng.randint(2, 3))]
    return "Recipe. " + " ".join(steps)


_PLACES = ["Athens", "Berlin", "Lisbon", "Oslo", "Rome", "Paris", "Vienna", "Prague"]


def headlines(rng: random.Random) -> str:
    return (f"BREAKING: {rng.choice(['Mayor', 'Minister', 'Court', 'Union', 'Club'])} of "
            f"{rng.choice(_PLACES)} {rng.choice(['announces', 'rejects', 'delays', 'wins'])} "
            f"{rng.choice(['new budget', 'final vote', 'transport deal', 'title'])} ({rng.randint(1, 30)} May)")


def emails(rng: random.Random) -> str:
    return (f"Dear {rng.choice(_NAMES)},\nplease find attached the {rng.choice(['report', 'invoice', 'slides'])} "
            f"for {rng.choice(_TOPICS)}. Best regards,\n{rng.choice(_NAMES)}")


TASKS = {"reviews": reviews, "sql": sql, "poems": poems, "recipes": recipes,
         "headlines": headlines, "emails": emails}


def task_corpus(task: str, rng: random.Random, n_chars: int) -> str:
    """Examples of one downstream task, one per line, up to ``n_chars`` characters."""
    out, size = [], 0
    while size < n_chars:
        example = TASKS[task](rng)
        out.append(example)
        size += len(example) + 1
    return "\n".join(out)


# ---------------------------------------------------------------- prompts

GENERIC_PROMPTS = ["Once upon a time", "The answer is", "def main(", "Hello, my name is",
                   "1, 2, 3,", "Translate to French:", "In summary,", "Q: What is"]


def prompt_pool(rng: random.Random, n: int, length: int = 24) -> list[str]:
    """``n`` distinct prompts: openings of held-out text from every pre-training source and
    downstream task, plus a few generic ones (the analogue of the paper's Pile prompts)."""
    sources = [SOURCES[name](random.Random(rng.random()), 4000) for name in sorted(SOURCES)]
    sources += [task_corpus(t, random.Random(rng.random()), 1500) for t in sorted(TASKS)]
    candidates = set(GENERIC_PROMPTS)
    for text in sources:
        for line in text.split("\n"):
            words = line.strip().split(" ")
            take = rng.randint(1, 4)
            if words and words[0]:
                candidates.add(" ".join(words[:take])[:length])
    pool = sorted(candidates)
    rng.shuffle(pool)
    if len(pool) < n:
        raise ValueError(f"only {len(pool)} distinct prompts available, {n} asked")
    return pool[:n]
