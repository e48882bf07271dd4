"""One worker process: ``python -m ai4m_helpers.benchmarking.worker --data-dir D --url U --runs-dir R``
drains the queue and prints the ids it processed (JSON, last line)."""
from __future__ import annotations

import argparse
import json

from .platform import drain


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--url", required=True)
    parser.add_argument("--runs-dir", required=True)
    parser.add_argument("--number", type=int, default=0)
    args = parser.parse_args(argv)
    print(json.dumps(drain(args.data_dir, args.url, args.runs_dir, args.number)))


if __name__ == "__main__":
    main()
