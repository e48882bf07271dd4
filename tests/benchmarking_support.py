"""What the benchmarking tests share: a bundle to vary, and the smallest honest submission."""
from ai4m_helpers.benchmarking.examples import METHODS

MAJORITY = METHODS["most frequent class"].encode()
OPEN_PHASE = '{name: main, start: "2020-01-01T00:00:00", end: "2100-01-01T00:00:00"}'
PAST_PHASE = '{name: past, start: "2020-01-01T00:00:00", end: "2021-01-01T00:00:00"}'


def bundle(dataset: str = "wine", share: float = 0.2, phases=(OPEN_PHASE,), wall_s: float = 20, cpu_s: int = 20,
           per_day: int = 50) -> str:
    """A competition's bundle; the default phase stays open for the tests' lifetime."""
    listed = "\n".join(f"  - {p}" for p in phases)
    return f"""
title: {dataset}
data: {{dataset: {dataset}}}
splits: {{seed: 0, public: {share}, private: {share}}}
metrics: [accuracy, macro_f1]
phases:
{listed}
limits: {{wall_s: {wall_s}, cpu_s: {cpu_s}, memory_mb: 1024, submissions_per_day: {per_day}}}
"""
