"""Chapter 8's audit, per dataset (generator family): train the detector on imbalanced data and on
balanced data, fine-tune the first on clean images (the control) and adversarially with ART (the
defence); measure output fairness (AIF360) and robustness bias (ART's DeepFool, a PGD
minimum-budget search and HopSkipJump) on one test set, for every attribute of the faces."""
from __future__ import annotations

import dataclasses

import numpy as np

from .. import claims as C
from ..art_tools import numpy_global_seed
from ..data.faces import ATTRIBUTES, PROTECTED, Faces, make_faces
from .metrics import aif360_metrics, fairness_table, numpy_metrics
from .models import LabelOnlyService, predict, white_box
from .robustness_bias import (attack_distances, deepfool, hop_skip_jump, max_gap, max_gap_under_relabelling,
                              pgd_min_distance, robustness_bias, starting_points)
from .train import adversarially_fine_tune, train_detector

CONDITIONS = ("imbalanced", "balanced", "fine-tuned (clean)", "adversarially trained")
DEEPFOOL = "DeepFool (L2, white box)"
PGD_INF = "PGD search (L∞, white box)"
BLACK = "HopSkipJump (L2, label-only service)"
WHITE = (DEEPFOOL, PGD_INF)
PRIMARY = "skin"              # the protected attribute the claims are about
# The L∞ search: geometric bisection between 1e-4 and 0.25 (the trace's amplitude is 0.16), 9
# halvings of the log-range, a resolution of about 1.5 % of the distance.
PGD_EPS = (1e-4, 0.25)
PGD_BISECTIONS = 9
# The label-only attack is the costliest (ART's HopSkipJump works image by image) and models an
# outsider probing the deployed service, so it audits the detector as deployed, trained on the
# imbalanced data; the white-box attacks audit every detector.
BLACK_BOX_CONDITIONS = ("imbalanced",)
DIRECTIONS = {"evasion (fakes)": 1, "false alarm (genuine)": 0}


@dataclasses.dataclass
class Audit:
    dataset: str
    condition: str
    seed: int
    accuracy: dict                # "all", and per attribute value ("skin=dark", ...)
    y_pred: np.ndarray
    distances: dict               # attack -> (distances, indices of the attacked test images)
    queries: int = 0
    transfer: dict = dataclasses.field(default_factory=dict)   # accuracy on the other datasets' tests


# -- data and detectors ---------------------------------------------------------------------------
def _faces(p: dict, n: int, dataset: str, skin_share: float, seed: int) -> Faces:
    return make_faces(n, p["size"], dataset, p["artefact_strength"], 0.5, {PRIMARY: skin_share},
                      p["luminance_scaling"], seed=seed)


def test_set(p: dict, dataset: str) -> Faces:
    """One test set per dataset; the datasets share their faces and differ in the trace alone."""
    return _faces(p, p["n_test"], dataset, p["test_group_share"], 10_000 + p["seed"])


def train_set(p: dict, dataset: str, condition: str, seed: int) -> Faces:
    share = 0.5 if condition == "balanced" else p["train_group_share"]
    return _faces(p, p["n_train"], dataset, share, seed)


def train(p: dict, dataset: str, seed: int, device) -> dict:
    """The four detectors of one dataset and seed: trained on imbalanced data, on balanced data,
    and the first one trained ``adv_epochs`` more on clean images (the control) or adversarially
    with ART (the defended detector)."""
    imb, bal = (train_set(p, dataset, c, seed) for c in ("imbalanced", "balanced"))
    models = {c: train_detector(d.x, d.y, p["epochs"], seed, device, p["width"])
              for c, d in (("imbalanced", imb), ("balanced", bal))}
    models["fine-tuned (clean)"] = train_detector(imb.x, imb.y, p["adv_epochs"], seed, device, p["width"],
                                                  start=models["imbalanced"])
    models["adversarially trained"] = adversarially_fine_tune(
        models["imbalanced"], imb.x, imb.y, p["adv_epochs"], seed, device, eps=p["adv_eps"])
    return models


def accuracy(y_pred: np.ndarray, test: Faces) -> dict:
    """Accuracy overall and per value of every attribute."""
    right = y_pred == test.y
    out = {"all": float(right.mean())}
    for a, values in test.attributes.items():
        for v, label in enumerate(ATTRIBUTES[a]):
            out[f"{a}={label}"] = float(right[values == v].mean())
    return out


def decide(model, test: Faces, device) -> tuple[np.ndarray, dict]:
    """The detector's verdicts on the test set, and its accuracy overall and per attribute value."""
    y_pred = predict(model, test.x, device)
    return y_pred, accuracy(y_pred, test)


def transfer(model, tests: dict, own: str, device) -> dict:
    """Accuracy on the other generator families' test sets (held-out manipulations)."""
    return {d: float((predict(model, t.x, device) == t.y).mean()) for d, t in tests.items() if d != own}


# -- attacks --------------------------------------------------------------------------------------
def attacked_subset(skin: np.ndarray, y: np.ndarray, n: int) -> np.ndarray:
    """The first n/4 test images of each skin tone x label (the test order is random, so the other
    attributes are mixed as in the test set). A smaller n gives a prefix of each stratum, so the
    black-box subset lies inside the white-box one."""
    quarter = n // 4
    return np.concatenate([np.flatnonzero((skin == g) & (y == label))[:quarter] for g in (0, 1) for label in (0, 1)])


def _measured(d: np.ndarray, idx: np.ndarray, y_pred: np.ndarray, test: Faces) -> np.ndarray:
    """Distances of the images the detector got right; NaN for the others (a misclassified image's
    "distance" measures how far it is from being right, not its robustness)."""
    return np.where(y_pred[idx] == test.y[idx], d, np.nan)


def _classify(model, device):
    return lambda x: predict(model, x.astype(np.float32), device)


def white_box_distances(p: dict, model, test: Faces, y_pred: np.ndarray, device) -> dict:
    """DeepFool (L2) and the PGD search for the smallest L∞ budget, on the same attacked images."""
    idx = attacked_subset(test.attributes[PRIMARY], test.y, p["n_white"])
    classifier = white_box(model, p["size"], device)
    d2, _ = attack_distances(deepfool(classifier), _classify(model, device), test.x[idx])
    dinf = pgd_min_distance(classifier, test.x[idx], y_pred[idx], eps_max=PGD_EPS[1], eps_min=PGD_EPS[0],
                            bisections=PGD_BISECTIONS, steps=p["pgd_steps"], norm=np.inf)
    return {DEEPFOOL: (_measured(d2, idx, y_pred, test), idx), PGD_INF: (_measured(dinf, idx, y_pred, test), idx)}


def black_box_distances(p: dict, model, test: Faces, y_pred: np.ndarray, seed: int, device) -> tuple[dict, int]:
    """HopSkipJump against the label-only service; returns the distances and the queries spent.
    ART's attack draws its directions from NumPy's global generator, seeded here per audit."""
    service = LabelOnlyService(model, device)
    idx = attacked_subset(test.attributes[PRIMARY], test.y, p["n_hsj"])
    hsj = hop_skip_jump(service.art(p["size"]), p["hsj_iter"], p["hsj_max_eval"])
    skin = test.attributes[PRIMARY]
    start = starting_points(test.x, y_pred, y_pred[idx], np.random.default_rng(seed), skin, skin[idx])
    with numpy_global_seed(seed):
        d, _ = attack_distances(hsj, _classify(model, device), test.x[idx], x_adv_init=start)
    return {BLACK: (_measured(d, idx, y_pred, test), idx)}, service.queries


# -- summaries ------------------------------------------------------------------------------------
def of(audits: list[Audit], dataset: str | None = None, condition: str | None = None) -> list[Audit]:
    return [a for a in audits if dataset in (None, a.dataset) and condition in (None, a.condition)]


def taus_for(audits: list[Audit], attack: str, points: int = 200) -> np.ndarray:
    """A grid of budgets for one attack's figures (L2 and L∞ distances differ in scale), up to
    just past its largest finite distance; the statistics themselves are exact, not on a grid."""
    d = np.concatenate([a.distances[attack][0] for a in audits if attack in a.distances])
    finite = d[np.isfinite(d)]
    return np.linspace(0, finite.max() * 1.05 if finite.size else 1.0, points)


def distances_of(audits: list[Audit], attack: str, test: Faces, attribute: str = PRIMARY,
                 label: int | None = None, within: np.ndarray | None = None):
    """(seeds x attacked images) distances and the attacked images' values of ``attribute`` (the
    same images for every seed); ``label`` keeps the genuine (0) or fake (1) images only, and
    ``within`` the images among those test indices."""
    idx = audits[0].distances[attack][1]
    keep = np.ones(len(idx), bool)
    if label is not None:
        keep &= test.y[idx] == label
    if within is not None:
        keep &= np.isin(idx, within)
    d = np.stack([a.distances[attack][0] for a in audits])
    return d[:, keep], test.attributes[attribute][idx][keep]


def robustness_bias_of(audits: list[Audit], attack: str, taus: np.ndarray, test: Faces,
                       attribute: str = PRIMARY, label: int | None = None) -> dict:
    """Robustness bias of one set of detectors under one attack: curves averaged over seeds, and
    the per-seed statistics (largest gap, median-distance ratio, success rates) averaged."""
    d, g = distances_of(audits, attack, test, attribute, label)
    per_seed = [robustness_bias(row, g, taus) for row in d]
    out = {k: float(np.mean([s[k] for s in per_seed])) for k, v in per_seed[0].items() if np.isscalar(v)}
    out.update(taus=taus, curve_privileged=np.mean([s["curve_privileged"] for s in per_seed], 0),
               curve_unprivileged=np.mean([s["curve_unprivileged"] for s in per_seed], 0), seeds=len(per_seed),
               measured=int(np.isfinite(d[0]).sum() + np.isinf(d[0]).sum()))
    return out


def detector_sets(audits: list[Audit], tests: dict):
    """(dataset, its test set, condition, the detectors of every seed) for each audited pair."""
    for d, test in tests.items():
        for c in CONDITIONS:
            runs = of(audits, d, c)
            if runs:
                yield d, test, c, runs


def fairness_of(audits: list[Audit], tests: dict, rounds: int, seed: int):
    """Per dataset and condition, AIF360's metrics for skin tone, averaged over seeds, with
    bootstrap intervals over test images."""
    import pandas as pd

    tables = {(d, c): fairness_table(test.y, [a.y_pred for a in runs], test.attributes[PRIMARY], rounds, seed)
              for d, test, c, runs in detector_sets(audits, tests)}
    return pd.concat(tables, names=["dataset", "condition", "metric"])


def attribute_table(audits: list[Audit], tests: dict, seed: int):
    """Every attribute, protected or not: accuracy per value, AIF360's output differences, and the
    robustness bias under both white-box attacks: P(an image with value 1 is closer to the boundary
    than one with value 0 and the same label), the largest gap between the curves with its chance
    level, and the ratio of median distances (value 1 over value 0). Point values averaged over
    seeds."""
    import pandas as pd

    rows = []
    for d, test, c, runs in detector_sets(audits, tests):
        for a, (name0, name1) in ATTRIBUTES.items():
            fair = pd.DataFrame([aif360_metrics(test.y, r.y_pred, test.attributes[a]) for r in runs]).mean()
            row = {"dataset": d, "condition": c, "attribute": a,
                   "protected": a in PROTECTED, "groups (0 / 1)": f"{name0} / {name1}",
                   "accuracy 0": np.mean([r.accuracy[f"{a}={name0}"] for r in runs]),
                   "accuracy 1": np.mean([r.accuracy[f"{a}={name1}"] for r in runs]),
                   "FPR difference": fair["false_positive_rate_difference"],
                   "TPR difference": fair["equal_opportunity_difference"],
                   "largest output gap": output_gap(fair.to_dict())}
            for attack, short in ((DEEPFOOL, "DeepFool"), (PGD_INF, "PGD L∞")):
                dist, g = distances_of(runs, attack, test, a)
                labels = _labels(runs, attack, test)
                row[f"P(1 closer) {short}"] = float(np.mean([closer_share(r, g, labels) for r in dist]))
                row[f"max RB {short}"] = float(np.mean([max_gap(r, g) for r in dist]))
                row[f"chance {short}"] = chance_max_rb(dist, g, seed, labels)
                with np.errstate(divide="ignore", invalid="ignore"):
                    row[f"median ratio {short}"] = float(np.mean(
                        [np.nanmedian(r[g == 1]) / np.nanmedian(r[g == 0]) for r in dist]))
            rows.append(row)
    return pd.DataFrame(rows)


def intersection_table(audits: list[Audit], tests: dict, first: str = "skin", second: str = "sex"):
    """Per subgroup of two protected attributes: size, accuracy, false-positive and false-negative
    rates, and the median DeepFool distance of its correctly classified attacked images."""
    import pandas as pd

    rows = []
    for d, test, c, runs in detector_sets(audits, tests):
        dist, g1 = distances_of(runs, DEEPFOOL, test, first)
        _, g2 = distances_of(runs, DEEPFOOL, test, second)
        for v1, n1 in enumerate(ATTRIBUTES[first]):
            for v2, n2 in enumerate(ATTRIBUTES[second]):
                m = (test.attributes[first] == v1) & (test.attributes[second] == v2)
                y = test.y[m]
                preds = [r.y_pred[m] for r in runs]
                at = (g1 == v1) & (g2 == v2)
                rows.append({"dataset": d, "condition": c, "subgroup": f"{n1}, {n2}", "test images": int(m.sum()),
                             "accuracy": np.mean([(p == y).mean() for p in preds]),
                             "false-positive rate": np.mean([p[y == 0].mean() for p in preds]),
                             "false-negative rate": np.mean([1 - p[y == 1].mean() for p in preds]),
                             "attacked": int(at.sum()),
                             "median DeepFool distance": float(np.nanmean(np.nanmedian(dist[:, at], 1)))})
    return pd.DataFrame(rows)


# -- the claims; margins fixed here, before any run --------------------------------------------
# The fair ranges of AIF360's documentation: differences within +-0.1, disparate impact in
# [0.8, 1.25] (the four-fifths rule). A robustness bias counts as large when an image of one skin
# tone is closer to the boundary than one of the other, of the same label, in at least 60 % of
# pairs (|P - 0.5| >= 0.1); a defence "removes" a bias when it lowers |P - 0.5| by more than 0.05
# against its clean control; two attacks agree when they order the skin tones alike and their
# log median ratios differ by less than log 1.5.
FAIR_TOLERANCE = 0.1
DI_RANGE = (0.8, 1.25)
LARGE_BIAS = 0.1
DEFENCE_MARGIN = 0.05
AGREEMENT_MARGIN = float(np.log(1.5))
NULL_PERMUTATIONS = 200
UNIT = "test image"


def output_gap(fair_values: dict) -> float:
    """The largest absolute difference among the output metrics (disparate impact, a ratio, aside);
    NaN when any of them is undefined (an empty cell), so that no resample quietly drops one."""
    diffs = [abs(v) for k, v in fair_values.items() if k != "disparate_impact"]
    return float("nan") if not np.all(np.isfinite(diffs)) else float(max(diffs))


def _seed_mean(fn, predictions_or_distances) -> float:
    return float(np.mean([fn(x) for x in predictions_or_distances]))


def output_gap_stat(y, g, predictions):
    """Largest |output-metric difference| on resampled test images, averaged over detectors."""
    return lambda idx: _seed_mean(lambda p: output_gap(numpy_metrics(y[idx], p[idx], g[idx])), predictions)


def log_di_stat(y, g, predictions):
    """|log disparate impact| on resampled test images, averaged over detectors."""
    def one(p, idx):
        with np.errstate(divide="ignore", invalid="ignore"):
            return abs(np.log(numpy_metrics(y[idx], p[idx], g[idx])["disparate_impact"]))
    return lambda idx: _seed_mean(lambda p: one(p, idx), predictions)


def chance_max_rb(d: np.ndarray, g: np.ndarray, seed: int, labels: np.ndarray | None = None) -> float:
    """The largest gap between two groups' curves is positive even when the groups do not differ
    (it is a two-sample Kolmogorov-Smirnov statistic): its mean when the group labels are shuffled
    among the measured images of each detector, within each true label when ``labels`` are given."""
    rng = np.random.default_rng(seed)
    strata = np.zeros(len(g), int) if labels is None else labels
    out = []
    for row in d:
        measured = ~np.isnan(row)
        perms = np.tile(g.astype(np.float64), (NULL_PERMUTATIONS, 1))
        for stratum in np.unique(strata):
            cols = np.flatnonzero(measured & (strata == stratum))
            perms[:, cols] = np.stack([rng.permutation(g[cols]) for _ in range(NULL_PERMUTATIONS)])
        out.append(max_gap_under_relabelling(row, perms).mean())
    return float(np.mean(out))


def _mann_whitney(closer: np.ndarray, farther: np.ndarray) -> float:
    """P(an item of ``closer`` is below one of ``farther``), ties counting half (the Mann-Whitney
    U statistic over the number of pairs); +inf, a failed attack, is beyond every distance."""
    if not len(closer) or not len(farther):
        return float("nan")
    far = np.sort(farther)
    above = len(far) - np.searchsorted(far, closer, side="right")
    ties = np.searchsorted(far, closer, side="right") - np.searchsorted(far, closer, side="left")
    return float((above + 0.5 * ties).sum() / (len(closer) * len(far)))


def closer_share(row: np.ndarray, g: np.ndarray, labels: np.ndarray) -> float:
    """P(a dark-skinned image is closer to the boundary than a light-skinned one of the same
    label), averaged over the two labels; measured images only. 0.5: no order between them."""
    keep = ~np.isnan(row)
    return float(np.nanmean([_mann_whitney(row[keep & (g == 1) & (labels == lab)], row[keep & (g == 0) & (labels == lab)])
                             for lab in (0, 1)]))


def closer_estimate(d: np.ndarray, g: np.ndarray, labels: np.ndarray, p: dict) -> C.Estimate:
    """:func:`closer_share` averaged over detectors, with a percentile bootstrap that resamples
    the attacked images within each skin tone x label stratum."""
    strata = [np.flatnonzero((g == a) & (labels == b)) for a in (0, 1) for b in (0, 1)]

    def stat(*idx):
        pick = np.concatenate([s[i.astype(int)] for s, i in zip(strata, idx)])
        return float(np.mean([closer_share(row[pick], g[pick], labels[pick]) for row in d]))

    return C.bootstrap(stat, [np.arange(len(s)) for s in strata], UNIT, p["bootstrap"], p["seed"],
                       paired_samples=False)


def _per_dataset(name: str, audits: list[Audit], one) -> C.Claim:
    """A claim decided per dataset (each generator family is its own benchmark), held on all."""
    return C.combine(name, {d: one(d) for d in dict.fromkeys(a.dataset for a in audits)}, rule="all")


def _labels(runs: list[Audit], attack: str, test: Faces) -> np.ndarray:
    return test.y[runs[0].distances[attack][1]]


def bias_large(runs: list[Audit], test: Faces, p: dict) -> C.Claim:
    """One skin tone closer to the boundary (DeepFool, same label) in at least 60 % of pairs. The
    share is folded to the side the data show (1 - P when light skin is the closer one), so that
    the claim is about a bias in either direction, as robustness bias is defined; the largest
    curve gap and its chance level stay in the evidence."""
    d, g = distances_of(runs, DEEPFOOL, test)
    labels = _labels(runs, DEEPFOOL, test)
    est = closer_estimate(d, g, labels, p)
    dark_closer = est.value >= 0.5 or not np.isfinite(est.value)
    folded = est if dark_closer else dataclasses.replace(
        est, value=1 - est.value, ci=None if est.ci is None else (1 - est.ci[1], 1 - est.ci[0]))
    return C.decide("P(" + ("dark" if dark_closer else "light") + " skin closer), same label", folded,
                    direction="greater", margin=0.5 + LARGE_BIAS,
                    evidence={"P(dark skin closer)": est.value,
                              "max RB (curves)": float(np.mean([max_gap(r, g) for r in d])),
                              "chance level of max RB": chance_max_rb(d, g, p["seed"], labels),
                              "measured images per detector": float(np.mean((~np.isnan(d)).sum(1)))})


def acceptable_claim(audits: list[Audit], tests: dict, p: dict) -> C.Claim:
    """Per dataset, on the imbalanced detector: every output gap (skin tone) within the tolerance,
    disparate impact within the four-fifths range, and yet a large robustness bias under DeepFool."""
    def one(dataset):
        test, runs = tests[dataset], of(audits, dataset, "imbalanced")
        y, g = test.y, test.attributes[PRIMARY]
        preds = [a.y_pred for a in runs]
        parts = {
            "largest output gap within the tolerance": C.decide(
                "largest output gap", C.bootstrap(lambda i: output_gap_stat(y, g, preds)(i.astype(int)),
                                                  [np.arange(len(y))], UNIT, p["bootstrap"], p["seed"]),
                direction="less", margin=FAIR_TOLERANCE),
            "disparate impact within 0.8-1.25 (|log DI| < log 1.25)": C.decide(
                "|log DI|", C.bootstrap(lambda i: log_di_stat(y, g, preds)(i.astype(int)),
                                        [np.arange(len(y))], UNIT, p["bootstrap"], p["seed"]),
                direction="less", margin=float(np.log(DI_RANGE[1]))),
            "robustness bias (DeepFool) is large": bias_large(runs, test, p),
        }
        return C.combine(dataset, parts, rule="all")

    return _per_dataset("Output-fairness metrics look acceptable while robustness bias is large", audits, one)


def log_ratio_gap(white: np.ndarray, black: np.ndarray, g: np.ndarray, p: dict) -> C.Estimate:
    """On the same images: the white-box attack's log(median distance, light / dark) minus the
    black-box one's, averaged over detectors; images resampled (the same for both attacks)."""
    def ratio(d, idx):
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.mean([np.log(np.nanmedian(r[idx][g[idx] == 0]) / np.nanmedian(r[idx][g[idx] == 1]))
                            for r in d])

    return C.bootstrap(lambda i: float(ratio(white, i.astype(int)) - ratio(black, i.astype(int))),
                       [np.arange(len(g))], UNIT, p["bootstrap"], p["seed"])


def vulnerability(d: np.ndarray, g: np.ndarray, p: dict) -> C.Estimate:
    """log(median distance of light / of dark skin), averaged over detectors: > 0 when dark skin is
    closer to the boundary. The skin tones are resampled separately."""
    d0, d1 = d[:, g == 0], d[:, g == 1]

    def stat(i0, i1):
        with np.errstate(divide="ignore", invalid="ignore"):
            return float(np.mean(np.log(np.nanmedian(d0[:, i0.astype(int)], 1) / np.nanmedian(d1[:, i1.astype(int)], 1))))

    return C.bootstrap(stat, [np.arange(d0.shape[1]), np.arange(d1.shape[1])], UNIT, p["bootstrap"], p["seed"],
                       paired_samples=False)


def agreement_claim(audits: list[Audit], tests: dict, p: dict) -> C.Claim:
    """Per dataset, on the detector attacked through the service and on the images both attacked:
    each white-box estimate (1) puts the skin tones in the same order as HopSkipJump (each attack's
    answer is a verdict on "dark skin is closer"; the two must give the same one) and (2) gives
    them the same ratio of median distances within a factor 1.5 (an equivalence test)."""
    def one(dataset):
        test, parts = tests[dataset], {}
        for condition in BLACK_BOX_CONDITIONS:
            runs = of(audits, dataset, condition)
            black, g = distances_of(runs, BLACK, test)
            common = runs[0].distances[BLACK][1]
            black_sign = C.decide(BLACK, vulnerability(black, g, p), direction="greater", margin=0.0)
            for white in WHITE:
                w, _ = distances_of(runs, white, test, within=common)
                est = log_ratio_gap(w, black, g, p)
                short = white.split(" (")[0]
                order = C.combine("same order", {
                    white: C.decide(white, vulnerability(w, g, p), direction="greater", margin=0.0),
                    BLACK: black_sign}, rule="agree")
                ratio = C.combine("ratio within x1.5", {
                    "above -log 1.5": C.decide("white minus black log ratio > -log 1.5", est, direction="greater",
                                               margin=-AGREEMENT_MARGIN),
                    "below log 1.5": C.decide("white minus black log ratio < log 1.5", est, direction="less",
                                              margin=AGREEMENT_MARGIN)}, rule="all")
                key = f"{condition}: {short} and HopSkipJump"
                parts[key] = C.combine(key, {"same order": order, "ratio within x1.5": ratio}, rule="all")
        return C.combine(dataset, parts, rule="all")

    return _per_dataset("White-box and black-box estimates agree on which group is more vulnerable", audits, one)


def _per_seed_bias(runs: list[Audit], test: Faces) -> list[float]:
    """|P(dark skin closer) - 0.5| (DeepFool, same label), one value per detector: how strongly
    the skin tones are ordered, whichever is closer."""
    d, g = distances_of(runs, DEEPFOOL, test)
    labels = _labels(runs, DEEPFOOL, test)
    return [abs(closer_share(row, g, labels) - 0.5) for row in d]


def balancing_claim(audits: list[Audit], tests: dict, p: dict) -> C.Claim:
    """Per dataset, balanced minus imbalanced training, paired per seed (a detector of each per seed,
    evaluated on the same test and attacked images): retraining is what balancing changes, so the
    replicate is the seed, and one seed cannot decide."""
    def one(dataset):
        test = tests[dataset]
        imb, bal = of(audits, dataset, "imbalanced"), of(audits, dataset, "balanced")
        y, g, every = test.y, test.attributes[PRIMARY], np.arange(len(test))
        gap = lambda runs: [output_gap_stat(y, g, [a.y_pred])(every) for a in runs]  # noqa: E731
        parts = {"output gap": C.decide("output gap", C.paired(gap(imb), gap(bal), unit="seed"),
                                        direction="less", margin=0.0),
                 "robustness bias (DeepFool)": C.decide(
                     "|P(dark skin closer) - 0.5|", C.paired(_per_seed_bias(imb, test), _per_seed_bias(bal, test),
                                                            unit="seed"), direction="less", margin=0.0)}
        return C.combine(dataset, parts, rule="all")

    return _per_dataset("Balancing the training data reduces both the output-fairness gaps and the robustness bias",
                        audits, one)


def defence_claim(audits: list[Audit], tests: dict, p: dict) -> C.Claim:
    """Per dataset: adversarial training lowers |P(dark skin closer) - 0.5| (DeepFool, same label)
    by less than ``DEFENCE_MARGIN`` against its clean control (the same extra epochs on clean
    images), paired per seed: the defence does not remove the bias. The signed shares of both
    arms and the change against the undefended detector are kept as evidence (a defence may keep
    the size of a bias and reverse its direction)."""
    def one(dataset):
        test = tests[dataset]
        arms = ("imbalanced", "fine-tuned (clean)", "adversarially trained")
        size = {c: _per_seed_bias(of(audits, dataset, c), test) for c in arms}
        signed = {}
        for c in arms:
            d, g = distances_of(of(audits, dataset, c), DEEPFOOL, test)
            signed[c] = float(np.mean([closer_share(r, g, _labels(of(audits, dataset, c), DEEPFOOL, test)) for r in d]))
        est = C.paired(size["fine-tuned (clean)"], size["adversarially trained"], unit="seed")
        return C.decide(f"{dataset}: defended minus clean control, |P(dark closer) - 0.5|", est,
                        direction="greater", margin=-DEFENCE_MARGIN,
                        evidence={"defended minus undefended": C.paired(size["imbalanced"],
                                                                        size["adversarially trained"]).value,
                                  **{f"P(dark skin closer), {c}": v for c, v in signed.items()}})

    return _per_dataset("Adversarial training leaves the robustness bias in place", audits, one)


def decide_claims(audits: list[Audit], tests: dict, p: dict) -> list[C.Claim]:
    return [acceptable_claim(audits, tests, p), agreement_claim(audits, tests, p),
            balancing_claim(audits, tests, p), defence_claim(audits, tests, p)]


__all__ = ["BLACK_BOX_CONDITIONS", "CONDITIONS", "DIRECTIONS", "Audit", "aif360_metrics", "attribute_table",
           "decide_claims", "fairness_of", "intersection_table", "output_gap", "robustness_bias_of", "taus_for",
           "test_set", "train"]
