"""What every chapter does first: check its parameters, seed, pick the device, open its record."""
from __future__ import annotations

import os
from typing import Any, Mapping

from .params import ParameterError, ParamSpec
from .plotting import use_book_style
from .results import ResultsRecord
from .runtime import choose_device, describe_device, seed_everything


def batch_run() -> bool:
    """True in a kernel the ``ai4m`` runner started (nobody at the screen: no progress bars,
    static pictures instead of live widgets)."""
    return bool(os.environ.get("AI4M_BATCH"))


def progress_bar(iterable, desc: str):
    """A text progress bar (tqdm) for a loop of more than a few seconds, in a live notebook only:
    a run for the book shows none."""
    if batch_run():
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, desc=desc, mininterval=5)


def start_chapter(chapter: str, spec: ParamSpec, namespace: Mapping[str, Any]):
    """Resolve the notebook's parameters (refusing bad ones before any work), seed everything,
    choose the device and open the results record. Returns (parameters, device, record).

    A bad parameter stops the notebook here with one line (under papermill too), not a traceback."""
    try:
        params = spec.resolve_from(namespace)
    except ParameterError as err:
        raise SystemExit(f"ParameterError: {err}") from None
    seed_everything(params["seed"])
    device = choose_device(params["device"])
    record = ResultsRecord(chapter, params, describe_device(device))
    use_book_style()
    try:
        import pandas as pd

        pd.set_option("display.precision", 3)
        pd.set_option("display.max_colwidth", None)  # claims and their evidence, not cut short
    except ImportError:
        pass
    print(f"chapter {chapter}, profile {params['profile']}, seed {params['seed']}, "
          f"device {record.data['device']}")
    return params, device, record
