"""The chapters of the book: where each notebook lives and which parameters it accepts."""
from __future__ import annotations

import dataclasses
import importlib
import pathlib

from .params import ParamSpec

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


@dataclasses.dataclass(frozen=True)
class Chapter:
    number: str            # "01"
    slug: str              # "src_robust_overfitting"
    title: str
    spec_ref: str          # "module:attribute" of its ParamSpec (kept light: no heavy imports)
    extra: str             # the pip extra it needs
    budget_s: dict = dataclasses.field(default_factory=lambda: {"smoke": 60, "full": 60})

    @property
    def name(self) -> str:
        return f"{self.number}_{self.slug}"

    @property
    def heading(self) -> str:
        """The chapter's title as the book, the CLI and the summaries show it."""
        return f"{self.number} — {self.title}"

    def notebook(self, notebooks_dir: pathlib.Path | None = None) -> pathlib.Path:
        return (notebooks_dir or REPO_ROOT / "notebooks") / f"{self.name}.ipynb"

    def spec(self) -> ParamSpec:
        module, attr = self.spec_ref.split(":")
        return getattr(importlib.import_module(module), attr)


CHAPTERS: tuple[Chapter, ...] = (
    Chapter("01", "src_robust_overfitting",
            "Self-residual calibration against robust overfitting",
            "ai4m_helpers.robustness.params:PARAMS", "robustness"),
    Chapter("02", "matching_pairs_llm_attribution",
            "Matching pairs: attributing fine-tuned language models to their base models",
            "ai4m_helpers.attribution.params:PARAMS", "attribution"),
    Chapter("03", "semaug_few_shot_counting",
            "SemAug: density- and caption-conditioned generative augmentation for few-shot counting",
            "ai4m_helpers.counting.params:PARAMS", "counting"),
    Chapter("04", "concept_vectors", "Disentangling polysemantic neurons into concept vectors",
            "ai4m_helpers.concepts.params:PARAMS", "concepts"),
    Chapter("05", "flcrypt_secure_federated_learning",
            "FLCrypt: federated learning with encrypted aggregation, and differential privacy",
            "ai4m_helpers.federated.params:PARAMS", "federated"),
    Chapter("06", "dp_graph_learning_gap", "Differentially private graph learning: GAP and ProGAP",
            "ai4m_helpers.graph_privacy.params:PARAMS", "graph_privacy"),
    Chapter("07", "knowledge_driven_active_learning", "Knowledge-driven active learning",
            "ai4m_helpers.active_learning.params:PARAMS", "active_learning"),
    Chapter("08", "deepfake_detector_fairness",
            "Fairness and robustness bias of a deepfake detector",
            "ai4m_helpers.fairness.params:PARAMS", "fairness"),
    Chapter("09", "benchmarking_platform", "An evaluation-as-a-service benchmarking platform",
            "ai4m_helpers.benchmarking.params:PARAMS", "benchmarking"),
    Chapter("10", "video_summarization_explanations",
            "Multi-granular explanations of video summarisation",
            "ai4m_helpers.video_xai.params:PARAMS", "video_xai"),
)


def find(names: list[str] | None = None, chapters=CHAPTERS) -> list[Chapter]:
    """Chapters by number ('01' or '1'), slug or full name; no names means all of them."""
    if not names:
        return list(chapters)
    found = []
    for name in names:
        match = [c for c in chapters
                 if name in (c.number, c.slug, c.name) or (name.isdigit() and int(name) == int(c.number))]
        if not match:
            known = ", ".join(f"{c.number} ({c.slug})" for c in chapters)
            raise KeyError(f"no chapter named {name!r}; chapters: {known}")
        found.extend(m for m in match if m not in found)
    return found
