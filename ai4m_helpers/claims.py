"""Claims: a paper's qualitative statement, measured on this run and decided in one of three words.

A claim compares two arms over replicates (seeds, zoos, held-out models, images). An
:class:`Estimate` holds the effect (for example the mean paired difference B - A), its confidence
interval, the number of replicates and what a replicate is. :func:`decide` turns an estimate into a
verdict against a margin that the chapter fixes in its code before any result exists:

- ``held``: the interval clears the margin in the claimed direction;
- ``not held``: the interval lies wholly on the other side of the margin;
- ``inconclusive``: the interval straddles the margin, there are too few replicates to estimate
  the noise, or the quantity could not be measured.

A claim over several tasks is decided per task and combined by a stated rule (:func:`combine`);
the per-task claims stay in the record. :func:`claims_table` and :func:`claims_markdown` are the one
renderer of claims for notebooks, the runner's summary and the reproduction page.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

HELD, NOT_HELD, INCONCLUSIVE = "held", "not held", "inconclusive"
VERDICTS = (HELD, NOT_HELD, INCONCLUSIVE)
DIRECTIONS = ("greater", "less")
RULES = {
    "all": "held on every part",
    "majority": "held on more than half of the parts",
    "agree": "the parts agree (all held, or all not held)",
}
LEVEL = 0.95


# -- estimates --------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Estimate:
    """A measured effect with its confidence interval over ``n`` replicates of kind ``unit``;
    ``reason`` says why there is no interval when there is none."""

    value: float
    ci: tuple[float, float] | None
    n: int
    unit: str
    method: str
    level: float = LEVEL
    reason: str = ""

    @property
    def measurable(self) -> bool:
        return self.n > 0 and math.isfinite(self.value)


def _values(values: Iterable[float]) -> np.ndarray:
    return np.asarray(list(values), dtype=float).ravel()


def _not_finite(v: np.ndarray, unit: str) -> str:
    bad = int(np.sum(~np.isfinite(v)))
    return f"{bad} of {v.size} {unit}s gave no finite value" if bad else ""


def fewest_without_spread(level: float = LEVEL) -> int:
    """Replicates that must all agree exactly before their common value counts as decided: the
    smallest n for which a two-sided sign test of n identical signs is significant at ``level``
    (6 at 95 %). Fewer identical values may be luck."""
    return math.ceil(math.log((1 - level) / 2, 0.5) + 1e-9)


def _no_spread(value: float, n: int, unit: str, method: str, level: float) -> Estimate:
    if n >= fewest_without_spread(level):
        return Estimate(value, (value, value), n, unit, f"{method} (no spread: sign test)", level)
    return Estimate(value, None, n, unit, method, level,
                    reason=f"all {n} {unit}s agree exactly; fewer than {fewest_without_spread(level)} "
                           f"may agree by chance")


def mean_ci(values: Iterable[float], unit: str = "seed", level: float = LEVEL) -> Estimate:
    """Mean of per-replicate values with a Student-t interval (none from a single value)."""
    from scipy import stats

    v = _values(values)
    if v.size == 0 or not np.all(np.isfinite(v)):
        return Estimate(float("nan"), None, int(v.size), unit, "t", reason=_not_finite(v, unit))
    mean = float(v.mean())
    if v.size < 2:
        return Estimate(mean, None, 1, unit, "t", reason=f"one {unit}: no estimate of {unit}-to-{unit} noise")
    if np.ptp(v) == 0:  # the t interval would shrink to the point
        return _no_spread(mean, int(v.size), unit, "t", level)
    lo, hi = stats.ttest_1samp(v, 0.0).confidence_interval(level)
    return Estimate(mean, (float(lo), float(hi)), int(v.size), unit, "t", level)


def paired(a: Iterable[float], b: Iterable[float], unit: str = "seed", level: float = LEVEL) -> Estimate:
    """Mean paired difference ``b - a`` over replicates, with a t interval."""
    a, b = _values(a), _values(b)
    if a.shape != b.shape:
        raise ValueError(f"paired values need the same length, got {a.size} and {b.size}")
    return mean_ci(b - a, unit, level)


def unpaired(a: Iterable[float], b: Iterable[float], unit: str, level: float = LEVEL) -> Estimate:
    """Difference of means ``mean(b) - mean(a)`` of two independent samples, Welch's t interval."""
    from scipy import stats

    a, b = _values(a), _values(b)
    n = int(a.size + b.size)
    if min(a.size, b.size) == 0 or not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        return Estimate(float("nan"), None, n, unit, "Welch t", reason=_not_finite(np.r_[a, b], unit))
    value = float(b.mean() - a.mean())
    if min(a.size, b.size) < 2:
        return Estimate(value, None, n, unit, "Welch t", reason=f"a group of one {unit}: no estimate of noise")
    if np.ptp(a) == 0 and np.ptp(b) == 0:
        return _no_spread(value, min(a.size, b.size), unit, "Welch t", level)
    lo, hi = stats.ttest_ind(b, a, equal_var=False).confidence_interval(level)
    return Estimate(value, (float(lo), float(hi)), n, unit, "Welch t", level)


def proportion(successes: int, trials: int, unit: str, level: float = LEVEL) -> Estimate:
    """A share of successes with its exact (Clopper-Pearson) interval."""
    from scipy import stats

    if trials == 0:
        return Estimate(float("nan"), None, 0, unit, "Clopper-Pearson", reason=f"no {unit}s")
    ci = stats.binomtest(int(successes), int(trials)).proportion_ci(level, method="exact")
    return Estimate(successes / trials, (float(ci.low), float(ci.high)), int(trials), unit,
                    "Clopper-Pearson", level)


def bootstrap(statistic: Callable[..., float], samples: Sequence[np.ndarray], unit: str,
              resamples: int, seed: int | np.random.Generator = 0, paired_samples: bool = True,
              level: float = LEVEL) -> Estimate:
    """A statistic of one or more samples with a percentile bootstrap interval (scipy's).

    With ``paired_samples`` the samples are resampled together, index by index (the same test
    images for every array); otherwise each sample is resampled on its own (two groups)."""
    from scipy import stats

    samples = [np.asarray(s) for s in samples]
    value = float(statistic(*samples))
    # Paired samples are one set of replicates; independent ones add up.
    n = len(samples[0]) if paired_samples else sum(len(s) for s in samples)
    method = "percentile bootstrap"
    if not math.isfinite(value):
        return Estimate(value, None, n, unit, method, reason="the statistic is not finite on the data")
    if min(len(s) for s in samples) < 2:
        return Estimate(value, None, n, unit, method, reason=f"fewer than two {unit}s to resample")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    with np.errstate(invalid="ignore", divide="ignore"):
        res = stats.bootstrap(samples, statistic, n_resamples=resamples, paired=paired_samples,
                              vectorized=False, confidence_level=level, method="percentile", random_state=rng)
    lo, hi = res.confidence_interval
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return Estimate(value, None, n, unit, method, reason="the statistic is not finite on some resamples")
    return Estimate(value, (float(lo), float(hi)), n, unit, method, level)


# -- claims -----------------------------------------------------------------------------------
@dataclasses.dataclass
class Claim:
    """A verdict on one statement, with what it was decided on."""

    name: str
    verdict: str
    estimate: Estimate | None = None
    direction: str | None = None
    margin: float | None = None
    evidence: dict = dataclasses.field(default_factory=dict)
    note: str = ""
    rule: str | None = None
    parts: dict[str, "Claim"] = dataclasses.field(default_factory=dict)

    @property
    def held(self) -> bool:
        return self.verdict == HELD

    def to_record(self) -> dict[str, Any]:
        """The claim as the results record keeps it (plain JSON values)."""
        e = self.estimate
        out = {"name": self.name, "verdict": self.verdict, "held": self.held,
               "effect": e.value if e else None, "ci": list(e.ci) if e and e.ci else None,
               "n": e.n if e else len(self.parts), "unit": e.unit if e else "part",
               "method": e.method if e else None, "level": e.level if e else None,
               "direction": self.direction, "margin": self.margin,
               "evidence": dict(self.evidence), "note": self.note}
        if self.rule:
            out["rule"] = self.rule
            out["parts"] = [{"part": key, **part.to_record()} for key, part in self.parts.items()]
        return out


def decide(name: str, estimate: Estimate, *, direction: str, margin: float,
           evidence: Mapping[str, Any] | None = None, unmeasurable: str | None = None,
           min_n: int = 2) -> Claim:
    """Decide a claim that the effect is ``direction`` ('greater' or 'less') than ``margin``.

    ``unmeasurable`` names a reason the quantity could not be measured (the verdict is then
    inconclusive whatever the numbers say); ``min_n`` is the fewest replicates that estimate noise."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    evidence = dict(evidence or {})
    verdict, note = INCONCLUSIVE, ""
    if unmeasurable:
        note = f"could not be measured: {unmeasurable}"
    elif not estimate.measurable:
        note = f"could not be measured: {estimate.reason or 'no finite value'}"
    elif estimate.n < min_n:
        note = f"{estimate.n} {estimate.unit}(s): no estimate of {estimate.unit}-to-{estimate.unit} noise"
    elif estimate.ci is None:
        note = estimate.reason or "no interval"
    else:
        lo, hi = estimate.ci
        sign = 1.0 if direction == "greater" else -1.0
        # Compare in the claimed direction: both ends beyond the margin, or both short of it.
        near, far = sorted((sign * (lo - margin), sign * (hi - margin)))
        if near > 0:
            verdict = HELD
        elif far < 0:
            verdict = NOT_HELD
        else:
            note = "the interval straddles the margin"
    return Claim(name, verdict, estimate, direction, float(margin), evidence, note)


def combine(name: str, parts: Mapping[str, Claim], rule: str = "all",
            evidence: Mapping[str, Any] | None = None) -> Claim:
    """One verdict from per-task (or per-setting) claims by a stated rule.

    ``all``: held if every part held; not held if any part did not hold; else inconclusive.
    ``majority``: held if more than half held; not held if that is out of reach even were every
    inconclusive part to hold; else inconclusive.
    ``agree``: held if all parts held or all did not hold; not held as soon as one held and one
    did not; else inconclusive.
    With ``all``, one part that did not hold decides, and no correction is made for the number
    of parts: the more parts, the easier "not held" becomes."""
    if rule not in RULES:
        raise ValueError(f"rule must be one of {tuple(RULES)}, got {rule!r}")
    if not parts:
        raise ValueError("a combined claim needs at least one part")
    verdicts = [p.verdict for p in parts.values()]
    count = {v: verdicts.count(v) for v in VERDICTS}
    k = len(verdicts)
    if rule == "all":
        verdict = NOT_HELD if count[NOT_HELD] else HELD if count[HELD] == k else INCONCLUSIVE
    elif rule == "majority":
        verdict = (HELD if count[HELD] > k / 2 else
                   NOT_HELD if count[HELD] + count[INCONCLUSIVE] <= k / 2 else INCONCLUSIVE)
    else:
        verdict = (NOT_HELD if count[HELD] and count[NOT_HELD] else
                   INCONCLUSIVE if count[INCONCLUSIVE] else HELD)
    parts_tally = ", ".join(f"{count[v]} {v}" for v in VERDICTS if count[v])
    return Claim(name, verdict, evidence=dict(evidence or {}), note=f"parts: {parts_tally}",
                 rule=rule, parts=dict(parts))


# -- rendering --------------------------------------------------------------------------------
def fmt(value: Any) -> str:
    """A number as a reader wants it: three significant digits, no float noise."""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        if not math.isfinite(value):
            return "–"
        return f"{value:.3g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(fmt(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "; ".join(f"{k} {fmt(v)}" for k, v in value.items())
    return str(value)


def effect_text(claim: Mapping[str, Any]) -> str:
    """'+0.072 [+0.059, +0.085]'; a combined claim has its effects in its parts."""
    if claim.get("effect") is None:
        return "see parts" if claim.get("rule") else "–"
    effect = f"{claim['effect']:+.3g}"
    ci = claim.get("ci")
    return f"{effect} [{ci[0]:+.3g}, {ci[1]:+.3g}]" if ci else effect


def margin_text(claim: Mapping[str, Any]) -> str:
    """What the effect had to clear ('> 0', '< 0.1'), or a combined claim's rule."""
    if claim.get("rule"):
        return RULES[claim["rule"]]
    if claim.get("margin") is None:
        return ""
    return f"{'>' if claim['direction'] == 'greater' else '<'} {claim['margin']:.3g}"


def _rows(claims: Iterable[Mapping[str, Any]], depth: int = 0) -> list[dict[str, str]]:
    rows = []
    for c in claims:
        label = c.get("part", c["name"]) if depth else c["name"]
        rows.append({"claim": ("· " * depth) + label, "verdict": c["verdict"],
                     "effect [95% CI]": effect_text(c), "claimed": margin_text(c),
                     "n": f"{c['n']} {c['unit']}" + ("s" if c["n"] != 1 else ""),
                     "evidence": fmt(c.get("evidence") or {}), "note": c.get("note", "")})
        rows += _rows(c.get("parts", []), depth + 1)
    return rows


def _as_records(claims) -> list[Mapping[str, Any]]:
    return [c.to_record() if isinstance(c, Claim) else c for c in claims]


def claims_table(claims):
    """The claims (objects or record entries) as a table for a notebook, parts indented below."""
    import pandas as pd

    frame = pd.DataFrame(_rows(_as_records(claims)))
    shade = {HELD: "#d8f0d8", NOT_HELD: "#f6d5d5", INCONCLUSIVE: "#ececec"}
    return (frame.style.hide(axis="index")
            .set_properties(**{"text-align": "left", "vertical-align": "top", "font-size": "0.85em"})
            .set_properties(subset=["effect [95% CI]"], **{"white-space": "nowrap"})
            .map(lambda v: f"background-color: {shade[v]}; font-weight: bold", subset=["verdict"]))


MARKDOWN_HEADER = ("| chapter | claim | verdict | effect [95% CI] | claimed | n | note |\n"
                   "|---|---|---|---|---|---|---|\n")


def claims_markdown(claims, chapter: str = "", header: bool = True) -> str:
    """The same table in Markdown, for the runner's summary and the reproduction page."""
    def cell(text: str) -> str:   # a '|' inside a cell would end it
        return str(text).replace("|", "\\|")

    lines = ["| " + " | ".join(cell(v) for v in (chapter, r["claim"], f"**{r['verdict']}**", r["effect [95% CI]"],
                                                 r["claimed"], r["n"], r["note"])) + " |\n"
             for r in _rows(_as_records(claims))]
    return (MARKDOWN_HEADER if header else "") + "".join(lines)


def tally(claims: Iterable[Mapping[str, Any]]) -> str:
    """'3 held, 1 not held, 1 inconclusive' (verdicts with no claim left out)."""
    verdicts = [c.get("verdict") or (HELD if c.get("held") else NOT_HELD) for c in claims]
    parts = [f"{verdicts.count(v)} {v}" for v in VERDICTS if verdicts.count(v)]
    return ", ".join(parts) or "no claims"
