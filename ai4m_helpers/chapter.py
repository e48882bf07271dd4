"""What every chapter does first: check its parameters, seed, pick the device, open its record."""
from __future__ import annotations

import os
from typing import Any, Mapping

from .params import ParameterError, ParamSpec
from .plotting import use_book_style
from .results import ResultsRecord
from .runtime import choose_device, describe_device, seed_everything


def start_chapter(chapter: str, spec: ParamSpec, namespace: Mapping[str, Any]):
    """Resolve the notebook's parameters (refusing bad ones before any work), seed everything,
    choose the device and open the results record. Returns (parameters, device, record).

    A bad parameter stops the notebook here with one line (under papermill too), not a traceback."""
    try:
        params = spec.resolve_from(namespace)
    except ParameterError as err:
        raise SystemExit(f"ParameterError: {err}") from None
    if os.environ.get("AI4M_NO_PROGRESS"):   # a run for the book (see runner.NO_PROGRESS_ENV)
        os.environ["TQDM_DISABLE"] = "1"
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
