"""Chapter 2's knobs. Kept free of heavy imports: `ai4m list` and the runner read it."""
from __future__ import annotations

from ..params import Param, ParamSpec

N_TASKS = 6          # downstream tasks in data.TASKS
MAX_BASES = 8        # bases in zoo.BASES


def _multiple_of_16(v: int) -> str | None:
    return None if v % 16 == 0 else "must be a multiple of 16 (attention heads of 16 dimensions)"


def _tasks_spread(values: dict) -> str | None:
    if values["n_bases"] * values["zoo_per_base"] < 2 * N_TASKS:
        return (f"n_bases x zoo_per_base must be at least {2 * N_TASKS}, so that each of the "
                f"{N_TASKS} tasks sits under two or more bases in the labelled zoo")
    return None


def _pretrained_source(v: str) -> str | None:
    """'' (none), a bundled model's short name, a local model folder or a hub name 'org/name'."""
    import pathlib

    from .bundled import BUNDLED, BUNDLED_INSTALL, bundled_file

    if not v:
        return None
    if v in BUNDLED:
        return None if bundled_file(v) else f"the bundled model {v!r} is not installed ({BUNDLED_INSTALL})"
    path = pathlib.Path(v).expanduser()
    if path.exists():
        return None if (path / "config.json").exists() else f"{v!r} is a path but holds no config.json"
    if v.count("/") == 1 and " " not in v:
        return None        # a hub name; loading it needs internet
    return (f"must be '', one of {sorted(BUNDLED)}, a model folder (with config.json) "
            "or a hub name 'org/name'")


def _response_fits(values: dict) -> str | None:
    if values["response_tokens"] >= values["context"]:
        return "response_tokens must be smaller than context (room is needed for the prompt)"
    return None


PARAMS = ParamSpec({
    "zoo_seeds": Param(int, 1, full=2, min=1, max=10, help="zoos built (seeds of the whole construction)"),
    "n_bases": Param(int, 6, full=8, min=3, max=MAX_BASES, help="base models in the zoo"),
    "zoo_per_base": Param(int, 2, min=1, max=N_TASKS, help="labelled fine-tunes per base (distinct tasks)"),
    "test_per_base": Param(int, 2, min=1, max=N_TASKS,
                           help="held-out fine-tunes per base (tasks drawn independently of the base)"),
    "width": Param(int, 32, full=64, min=16, max=1024, check=_multiple_of_16,
                   help="embedding width of a base (siblings scale it)"),
    "layers": Param(int, 1, full=2, min=1, max=24, help="transformer blocks per model"),
    "context": Param(int, 48, full=96, min=16, max=1024, help="context length in tokens"),
    "vocab": Param(int, 512, full=1024, min=300, max=50000, help="BPE vocabulary per tokenizer"),
    "base_steps": Param(int, 120, full=200, min=1, max=100000, help="pre-training steps per base"),
    "finetune_steps": Param(int, 30, full=50, min=1, max=100000,
                            help="typical fine-tuning steps (each fine-tune draws 1/3x-3x, log-uniform)"),
    "batch": Param(int, 16, full=32, min=1, max=4096, help="sequences per training step"),
    "lr": Param(float, 3e-3, min=1e-6, max=1.0, help="pre-training learning rate (fine-tunes: 0.3x-1x)"),
    "corpus_chars": Param(int, 100_000, full=300_000, min=20_000, max=10_000_000,
                          help="characters of each pre-training corpus"),
    "response_tokens": Param(int, 24, min=4, max=1000, help="tokens generated per response"),
    "train_prompts": Param(int, 40, full=60, min=5, max=2000, help="prompts for training the attributors"),
    "query_prompts": Param(int, 40, full=60, min=5, max=2000,
                           help="prompts sent to each held-out fine-tune (the query budget's maximum)"),
    "featurizer": Param(str, "tfidf", full="minilm", choices=("tfidf", "minilm"),
                        help="response features: char n-gram TF-IDF or MiniLM sentence embeddings"),
    "encoder": Param(str, "", help="MiniLM folder or hub name ('' = the bundled offline copy)"),
    "pretrained": Param(str, "", check=_pretrained_source,
                        help="a real pretrained model added as one more base: 'smollm2' (bundled "
                             "SmolLM2-135M-Instruct), a model folder or a hub name ('' = none)"),
    "pretrained_lr": Param(float, 1e-4, min=1e-7, max=1e-2,
                           help="typical fine-tuning learning rate of the pretrained base (0.3x-1x)"),
    "finetune_lr_scale": Param(float, 1.0, min=1e-3, max=10.0,
                               help="small bases' fine-tuning learning rates (0.3x-1x lr) times this"),
    "random_orders": Param(int, 20, min=1, max=1000, help="random prompt orders per budget point"),
    "cache_dir": Param(str, "", help="where built zoos are kept ('' = $AI4M_CACHE or ~/.cache/ai4m)"),
}, joint_checks=(_tasks_spread, _response_fits))
