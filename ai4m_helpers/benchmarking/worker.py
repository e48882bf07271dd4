"""One worker process: ``python -m ai4m_helpers.benchmarking.worker --data-dir D --runs-dir R``, with
the database URL in the environment variable AI4M_BENCH_DB (SQLite in D when unset), drains the
queue and prints the ids it processed (JSON, last line)."""
from __future__ import annotations

import argparse
import json
import os

from .platform import URL_VARIABLE, drain


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--runs-dir", required=True)
    parser.add_argument("--number", type=int, default=0)
    args = parser.parse_args(argv)
    url = os.environ.get(URL_VARIABLE) or None
    print(json.dumps(drain(args.data_dir, url, args.runs_dir, args.number)))


if __name__ == "__main__":
    main()
