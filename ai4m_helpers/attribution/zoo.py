"""A zoo of small GPT-2-style language models: base models and their fine-tuned descendants.

No model hub can be reached here, so the zoo is built with the ``transformers`` API itself:
byte-level BPE tokenizers trained with ``tokenizers`` on each base's pre-training corpus, GPT-2
configurations, ``save_pretrained``/``from_pretrained``. Like the model hubs the paper drew on, the
zoo has *sibling* bases (same data with half the width and another seed, as distilgpt2 beside
gpt2; same data and another seed; one base continued on dialogue, as DialoGPT continues GPT-2)
and descendants fine-tuned on downstream tasks, split into a labelled zoo and a held-out test set.
Optionally one real pretrained model (SmolLM2-135M, bundled offline) joins as a further base, with
descendants fine-tuned on the same tasks with the same number of steps.

Models of one architecture are trained together as one stack (``ai4m_helpers.many_models``), each
with its own data, learning rate and number of steps, because small models are launch-bound on a
GPU.
"""
from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import os
import pathlib
import random
import shutil
import tempfile
import time
from typing import Sequence

import torch

from . import data as corpora
from .models import load_pretrained, new_model, train_tokenizer
from .train import train_alone, train_together

ZOO_FORMAT = 7            # bump when a change to how zoos are built changes what a zoo holds


@dataclasses.dataclass(frozen=True)
class BaseSpec:
    """One pre-trained base model of the zoo."""

    name: str
    corpus: str            # key of corpora.PRETRAINING
    family: str            # bases of one family are siblings
    role: str              # the public model it plays the part of
    width_scale: float = 1.0
    parent: str | None = None  # continue pre-training this base (like DialoGPT from GPT-2)
    seed_offset: int = 0
    source: str = ""           # a real pretrained model (bundled name, folder or hub name)

    @property
    def tokenizer_corpus(self) -> str:
        """Siblings share their family's tokenizer, as gpt2, distilgpt2 and DialoGPT do."""
        return {"prose": "docs", "code": "code"}.get(self.family, self.corpus)


BASES: tuple[BaseSpec, ...] = (
    BaseSpec("prose", "docs", "prose", "gpt2"),
    BaseSpec("prose-small", "docs", "prose", "distilgpt2", width_scale=0.5, seed_offset=1),
    BaseSpec("prose-chat", "dialogue", "prose", "DialoGPT", parent="prose"),
    BaseSpec("code", "code", "code", "codegen-350M"),
    BaseSpec("polyglot", "polyglot", "polyglot", "bloom-350m"),
    BaseSpec("mixture", "mixture", "mixture", "gpt-neo-125M (The Pile)"),
    BaseSpec("code-b", "code", "code", "a second codegen checkpoint", seed_offset=2),
    BaseSpec("tables", "tables", "tables", "a model pre-trained on tables and numbers"),
)


@dataclasses.dataclass(frozen=True)
class FineTuneSpec:
    name: str
    base: str
    task: str              # key of corpora.TASKS
    split: str             # "zoo" (labelled, known to the attributor) or "test" (held out)
    steps: int
    lr: float


@dataclasses.dataclass(frozen=True)
class ZooSettings:
    """Everything a zoo depends on; its hash names the cache folder."""

    n_bases: int
    zoo_per_base: int
    test_per_base: int
    width: int
    layers: int
    context: int
    vocab: int
    base_steps: int
    finetune_steps: int
    batch: int
    lr: float
    corpus_chars: int
    seed: int
    pretrained: str = ""       # a real pretrained model joins as one more base ('' = none)
    pretrained_lr: float = 1e-4  # its descendants' typical fine-tuning learning rate
    finetune_lr_scale: float = 1.0  # the small bases' fine-tuning rates: 0.3x-1x lr, times this

    def key(self) -> str:
        """The settings' hash. Optional settings left at their defaults stay out of it, so that a
        knob added later does not orphan the zoos already built."""
        values = dataclasses.asdict(self)
        for f in dataclasses.fields(self):
            if f.name in OPTIONAL and values[f.name] == f.default:
                del values[f.name]
        blob = json.dumps({"format": ZOO_FORMAT, **values}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


OPTIONAL = {"finetune_lr_scale"}      # settings added after format 7, hashed only when set


PRETRAINED = "pretrained"   # the name of the real pretrained base in a zoo


def zoo_bases(settings: ZooSettings) -> list[BaseSpec]:
    """The zoo's bases: the first ``n_bases`` of BASES, and the real pretrained model if asked."""
    bases = list(BASES[:settings.n_bases])
    if settings.pretrained:
        bases.append(BaseSpec(PRETRAINED, "", PRETRAINED, f"{settings.pretrained} (real, pretrained)",
                              source=settings.pretrained))
    return bases


def _draw_strength(rng: random.Random, steps: int, lr: float) -> tuple[int, float]:
    """Steps log-uniform over a ninefold range around ``steps``; learning rate 0.3x-1x ``lr``."""
    return max(1, round(steps * math.exp(rng.uniform(-1.1, 1.1)))), lr * rng.uniform(0.3, 1.0)


def labelled_tasks(bases, per_base: int, tasks: list[str], rng: random.Random) -> dict[str, list[str]]:
    """The labelled zoo's tasks of each base: every task used as evenly as possible, and siblings
    (bases of one family) given different tasks where the tasks suffice, so that a shared task
    cannot stand for a shared family. Bases are served largest family first, in random order
    otherwise, each taking the least used tasks its family has not taken (ties at random)."""
    usage = {t: 0 for t in tasks}
    out: dict[str, list[str]] = {}
    size = {b.family: sum(o.family == b.family for o in bases) for b in bases}
    order = sorted(rng.sample(list(bases), len(bases)), key=lambda b: -size[b.family])  # big families first
    for base in order:
        family = {t for other in bases if other.family == base.family and other.name in out
                  for t in out[other.name]}
        chosen = sorted(tasks, key=lambda t: (t in family, usage[t], rng.random()))[:per_base]
        for t in chosen:
            usage[t] += 1
        out[base.name] = sorted(chosen)
    return out


def plan_finetunes(settings: ZooSettings) -> list[FineTuneSpec]:
    """Descendants of every base, with task and base independent.

    The labelled zoo deals tasks to bases evenly (see ``labelled_tasks``), so that each task sits
    under several bases and no task names its base or its family. Each held-out fine-tune
    draws its task at random, independently of its base (distinct tasks within a base): a new
    (base, task, seed, strength) combination, which may share base and task with a labelled model
    but not its fine-tuning run. Steps (log-uniform over a ninefold range around
    ``finetune_steps``) and learning rates vary, as they do between fine-tunes found on a hub:
    light and heavy fine-tunes sit in the same zoo."""
    rng = random.Random(settings.seed + 101)
    tasks = sorted(corpora.TASKS)
    bases = BASES[:settings.n_bases]
    labelled = labelled_tasks(bases, settings.zoo_per_base, tasks, rng)
    specs = []
    for base in bases:
        test_tasks = rng.sample(tasks, settings.test_per_base)
        specs += _descendants(base.name, labelled[base.name], test_tasks, rng, settings.finetune_steps,
                              settings.lr * settings.finetune_lr_scale)
    if settings.pretrained:
        specs += _pretrained_descendants(settings, labelled, tasks)
    return specs


def _descendants(base: str, zoo_tasks, test_tasks, rng: random.Random, steps: int, lr: float):
    specs = []
    for split, chosen in (("zoo", zoo_tasks), ("test", test_tasks)):
        for task in chosen:
            n, rate = _draw_strength(rng, steps, lr)
            name = f"{base}/{task}" + ("/held-out" if split == "test" else "")
            specs.append(FineTuneSpec(name, base, task, split, n, rate))
    return specs


def _pretrained_descendants(settings: ZooSettings, labelled: dict, tasks: list[str]):
    """The real base's descendants, drawn after (and apart from) the small bases' ones, so that
    adding it leaves the rest of the zoo unchanged: labelled tasks the least used ones, held-out
    tasks at random, steps drawn as for every base, learning rates around ``pretrained_lr``."""
    rng = random.Random(settings.seed + 202)
    usage = {t: sum(t in chosen for chosen in labelled.values()) for t in tasks}
    zoo_tasks = sorted(sorted(tasks, key=lambda t: (usage[t], rng.random()))[:settings.zoo_per_base])
    test_tasks = rng.sample(tasks, settings.test_per_base)
    return _descendants(PRETRAINED, zoo_tasks, test_tasks, rng, settings.finetune_steps,
                        settings.pretrained_lr)


# ---------------------------------------------------------------- the zoo on disk


def _folder(model_name: str) -> str:
    """Folder of a model inside its zoo ("prose/sql" -> "prose__sql")."""
    return model_name.replace("/", "__")


def default_cache_dir() -> pathlib.Path:
    return pathlib.Path(os.environ.get("AI4M_CACHE", pathlib.Path.home() / ".cache" / "ai4m")) / "zoo"


@dataclasses.dataclass
class Zoo:
    """A built zoo on disk: ``path/<model name>`` holds each model and its tokenizer."""

    path: pathlib.Path
    settings: ZooSettings
    bases: list[BaseSpec]
    finetunes: list[FineTuneSpec]
    build_s: float

    def model_dir(self, name: str) -> pathlib.Path:
        return self.path / _folder(name)

    def split(self, split: str) -> list[FineTuneSpec]:
        return [f for f in self.finetunes if f.split == split]

    def family(self, base: str) -> str:
        return next(b.family for b in self.bases if b.name == base)

    def siblings(self, base: str) -> list[str]:
        fam = self.family(base)
        return [b.name for b in self.bases if b.family == fam and b.name != base]

    def tree(self) -> list[dict]:
        """The family tree as rows: base, family, role, descendants."""
        return [{"base": b.name, "family": b.family, "plays": b.role,
                 "continued from": b.parent or "",
                 "zoo descendants": ", ".join(f.task for f in self.finetunes if f.base == b.name and f.split == "zoo"),
                 "test descendants": ", ".join(f.task for f in self.finetunes if f.base == b.name and f.split == "test")}
                for b in self.bases]


def load_zoo(path: str | pathlib.Path) -> Zoo:
    path = pathlib.Path(path)
    meta = json.loads((path / "zoo.json").read_text())
    return Zoo(path, ZooSettings(**meta["settings"]), [BaseSpec(**b) for b in meta["bases"]],
               [FineTuneSpec(**f) for f in meta["finetunes"]], meta["build_s"])


def build_zoos(settings: Sequence[ZooSettings], cache_dir: str | pathlib.Path | None = None,
               device="cpu", log=print) -> list[Zoo]:
    """The zoos for ``settings`` (typically one per seed), loaded from the cache folder when built
    before; the missing ones are built together, models of one architecture in one ensemble."""
    root = pathlib.Path(cache_dir) if cache_dir else default_cache_dir()
    finals = [root / f"zoo-{s.key()}" for s in settings]
    missing = [s for s, f in zip(settings, finals) if not (f / "zoo.json").exists()]
    if missing:
        root.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        works = [pathlib.Path(tempfile.mkdtemp(prefix="building-", dir=root)) for _ in missing]
        try:
            _build_into(works, missing, device, log)
            for work, s in zip(works, missing):
                meta = {"settings": dataclasses.asdict(s), "format": ZOO_FORMAT,
                        "bases": [dataclasses.asdict(b) for b in zoo_bases(s)],
                        "finetunes": [dataclasses.asdict(f) for f in plan_finetunes(s)],
                        "build_s": (time.perf_counter() - start) / len(missing)}
                (work / "zoo.json").write_text(json.dumps(meta, indent=1))
                final = root / f"zoo-{s.key()}"
                if final.exists():       # built meanwhile by another process
                    shutil.rmtree(work)
                else:
                    work.rename(final)
        finally:
            for work in works:
                shutil.rmtree(work, ignore_errors=True)
    return [load_zoo(f) for f in finals]


class _ZooPlan:
    """One zoo's corpora, tokenizers and token streams, ready for training."""

    def __init__(self, s: ZooSettings):
        rng = random.Random(s.seed)
        self.settings = s
        self.bases = zoo_bases(s)
        self.finetunes = plan_finetunes(s)
        self.texts = {name: fn(random.Random(rng.random()), s.corpus_chars)
                      for name, fn in corpora.PRETRAINING.items()}
        self.texts.update({t: corpora.task_corpus(t, random.Random(rng.random()), s.corpus_chars // 4)
                           for t in sorted(corpora.TASKS)})
        small = [b for b in self.bases if not b.source]
        self.tokenizers = {key: train_tokenizer(self.texts[key], s.vocab)
                           for key in sorted({b.tokenizer_corpus for b in small})}
        self.tok_of = {b.name: b.tokenizer_corpus for b in small}
        self.width = {b.name: max(16, int(round(s.width * b.width_scale / 16)) * 16) for b in small}
        self.pretrained = {}      # name -> the real base, loaded (its tokenizer comes with it)
        for b in self.bases:
            if b.source:
                self.pretrained[b.name], self.tokenizers[b.source] = load_pretrained(b.source)
                self.tok_of[b.name] = b.source
        self._streams: dict = {}

    def stream(self, base: str, text_key: str) -> torch.Tensor:
        key = (self.tok_of[base], text_key)
        if key not in self._streams:
            ids = self.tokenizers[key[0]](self.texts[text_key])["input_ids"]
            self._streams[key] = torch.tensor(ids, dtype=torch.long)
        return self._streams[key]

    def base_init(self, b: BaseSpec):
        s = self.settings
        return new_model(s.vocab, self.width[b.name], s.layers, s.context,
                         s.seed * 1000 + 17 * BASES.index(b) + b.seed_offset)

    def save(self, work: pathlib.Path, name: str, model, base: str) -> None:
        out = work / _folder(name)
        model.save_pretrained(out)
        self.tokenizers[self.tok_of[base]].save_pretrained(out)


def _train_jobs(jobs: list[dict], plans: list[_ZooPlan], device, log, what: str) -> None:
    """Train jobs (dicts with plan index, model, stream, steps, lr) grouped by architecture;
    each job's ``model`` is replaced by its trained version."""
    by_width: dict[int, list[dict]] = {}
    for job in jobs:
        by_width.setdefault(job["width"], []).append(job)
    for w, todo in by_width.items():
        s = plans[todo[0]["plan"]].settings
        log(f"{what}: {len(todo)} models of width {w}, up to {max(j['steps'] for j in todo)} steps")
        trained = train_together([j["model"] for j in todo], [j["stream"] for j in todo],
                                 [j["steps"] for j in todo], [j["lr"] for j in todo],
                                 s.batch, s.context, device, s.seed + w)
        for j, m in zip(todo, trained):
            j["model"] = m


def _build_into(works: list[pathlib.Path], settings: list[ZooSettings], device, log) -> None:
    plans = [_ZooPlan(s) for s in settings]
    models: list[dict] = [dict(plan.pretrained) for plan in plans]
    for stage in ("pre-training", "continued pre-training"):
        jobs = []
        for i, plan in enumerate(plans):
            for b in plan.bases:
                if b.source or (b.parent is None) != (stage == "pre-training"):
                    continue
                start = copy.deepcopy(models[i][b.parent]) if b.parent else plan.base_init(b)
                steps = plan.settings.base_steps // (2 if b.parent else 1)
                jobs.append({"plan": i, "name": b.name, "model": start, "width": plan.width[b.name],
                             "stream": plan.stream(b.name, b.corpus), "steps": steps, "lr": plan.settings.lr})
        _train_jobs(jobs, plans, device, log, stage)
        for j in jobs:
            models[j["plan"]][j["name"]] = j["model"]
    jobs = [{"plan": i, "name": f.name, "base": f.base, "model": copy.deepcopy(models[i][f.base]),
             "width": plan.width[f.base], "stream": plan.stream(f.base, f.task), "steps": f.steps, "lr": f.lr}
            for i, plan in enumerate(plans) for f in plan.finetunes if f.base in plan.width]
    _train_jobs(jobs, plans, device, log, "fine-tuning")
    for i, (plan, work) in enumerate(zip(plans, works)):
        for b in plan.bases:
            plan.save(work, b.name, models[i][b.name], b.name)
    for j in jobs:
        plans[j["plan"]].save(works[j["plan"]], j["name"], j["model"], j["base"])
    for i, (plan, work) in enumerate(zip(plans, works)):
        _finetune_pretrained(plan, work, models[i], device, log)


def _finetune_pretrained(plan: _ZooPlan, work: pathlib.Path, models: dict, device, log) -> None:
    """The real base's descendants, one at a time (a 135M-parameter model does not stack cheaply
    on a CPU), each saved as soon as it is trained."""
    s = plan.settings
    for n, f in enumerate(f for f in plan.finetunes if f.base in plan.pretrained):
        log(f"fine-tuning the pretrained base: {f.name}, {f.steps} steps")
        model = train_alone(copy.deepcopy(models[f.base]), plan.stream(f.base, f.task), f.steps, f.lr,
                            s.batch, s.context, device, s.seed * 1000 + 313 + n)
        plan.save(work, f.name, model, f.base)
