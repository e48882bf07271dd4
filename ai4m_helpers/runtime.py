"""Seeding, determinism and device choice, shared by every chapter."""
from __future__ import annotations

import os
import platform
import random

import numpy as np


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Seed Python, NumPy and PyTorch. On the CPU the same seed then gives the same numbers."""
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        # cuBLAS needs this for bit-exact matmuls; harmless on CPU.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


def replicate_seeds(seed: int, n: int) -> list[int]:
    """Seeds of the ``n`` replicates (seeds, zoos) of a run seeded with ``seed``, spawned by NumPy's
    SeedSequence: runs with different seeds share no replicate, as ``seed, seed + 1, ...`` would."""
    return [int(child.generate_state(1)[0]) for child in np.random.SeedSequence(seed).spawn(n)]


def choose_device(device: str = "auto"):
    """'auto' picks CUDA when present, else the CPU; any explicit name is checked to exist."""
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r} asked for, but no CUDA device is available")
    return dev


def cpu_threads() -> int:
    """Threads PyTorch uses on this machine."""
    import torch

    return torch.get_num_threads()


def describe_device(device) -> str:
    """A human-readable name of the hardware, for the results record."""
    import torch

    dev = torch.device(device)
    if dev.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(dev)}"
    return f"cpu: {_cpu_name()} ({cpu_threads()} threads)"


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
