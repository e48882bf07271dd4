"""Install PyTorch for this machine, before the book's own packages.

Without an NVIDIA GPU the CPU build is enough, and PyTorch publishes it on its own CPU index
(about 200 MB, against several GB of CUDA libraries that the default index's build pulls in on
Linux). Where that index cannot be reached (a machine that sees only the default index), the
default index is asked next. With a GPU, the default index's build (CUDA) is the one wanted.
`TORCH_SPEC` (an environment variable) overrides all of this with an exact pip requirement.

Usage: python tools/install_torch.py VERSION
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def has_nvidia_gpu() -> bool:
    smi = shutil.which("nvidia-smi")
    return bool(smi) and subprocess.run([smi, "-L"], capture_output=True).returncode == 0


def attempts(version: str, gpu: bool, spec: str | None = None) -> list[list[str]]:
    """The pip arguments to try, in order, until one succeeds."""
    if spec:
        return [[spec]]
    pin = f"torch=={version}"
    if gpu:
        return [[pin]]
    # The CPU index first, failing fast if it is unreachable; then the default index.
    return [[pin, "--extra-index-url", CPU_INDEX, "--retries", "0", "--timeout", "15"], [pin]]


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    plan = attempts(argv[0], has_nvidia_gpu(), os.environ.get("TORCH_SPEC") or None)
    rc = 1
    for args in plan:
        print("installing " + " ".join(args), flush=True)
        rc = subprocess.run([sys.executable, "-m", "pip", "install", "-q", *args]).returncode
        if rc == 0:
            return 0
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
