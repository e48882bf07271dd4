import csv

import numpy as np
import pytest
import torch
from torch import nn

from ai4m_helpers.data.faces import (ARTEFACTS, ATTRIBUTES, PROTECTED, artefact_visibility, detectability,
                                     load_image_folder, make_faces, manipulated_twin)
from ai4m_helpers.fairness import PARAMS
from ai4m_helpers.fairness.models import LabelOnlyService, white_box
from ai4m_helpers.fairness.metrics import (METRICS, aif360_metrics, confusion_by_group, fairness_table,
                                           numpy_metrics)
from ai4m_helpers.fairness.robustness_bias import (attack_distances, deepfool, robustness_bias,
                                                   starting_points, survival)
from ai4m_helpers.params import ParameterError


def test_generator_knobs_do_what_they_say():
    f = make_faces(4000, 16, "blend", fake_share=0.3, shares={"skin": 0.2, "glasses": 0.7}, seed=1)
    assert f.x.shape == (4000, 3, 16, 16) and 0 <= f.x.min() and f.x.max() <= 1
    assert set(f.attributes) == set(ATTRIBUTES)
    assert f.attributes["skin"].mean() == pytest.approx(0.2, abs=0.02)
    assert f.attributes["glasses"].mean() == pytest.approx(0.7, abs=0.02)
    assert f.attributes["age"].mean() == pytest.approx(0.5, abs=0.03) and f.y.mean() == pytest.approx(0.3, abs=0.02)
    assert np.all(f.factors["artefact_amplitude"][f.y == 0] == 0)       # genuine faces carry no trace
    # the attributes are drawn independently of each other
    assert abs(np.corrcoef(f.attributes["skin"], f.attributes["sex"])[0, 1]) < 0.05
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        make_faces(10, shares={"skin": 1.0})
    with pytest.raises(ValueError, match="unknown attribute"):
        make_faces(10, shares={"height": 0.5})
    with pytest.raises(ValueError, match="unknown artefact"):
        make_faces(10, artefact="gan")


@pytest.mark.parametrize("artefact", ARTEFACTS)
def test_the_default_generator_plants_no_bias_the_trace_is_equally_visible_in_every_group(artefact):
    """The property the chapter's claims rest on: by default the manipulation is as visible in
    every group of every attribute (RMS difference from the genuine twin): equal within sampling
    error (|z| < 4) and within 3 %."""
    f = make_faces(6000, 24, artefact, seed=0)
    v = f.factors["visibility"]
    means = artefact_visibility(f)
    for a, g in f.attributes.items():
        se = np.sqrt(v[g == 1].var() / (g == 1).sum() + v[g == 0].var() / (g == 0).sum())
        assert abs(means[(a, 1)] - means[(a, 0)]) < 4 * se, a
        assert means[(a, 1)] == pytest.approx(means[(a, 0)], rel=0.03), a


@pytest.mark.parametrize("artefact", ARTEFACTS)
def test_the_default_generator_plants_no_bias_an_oracle_detects_the_trace_equally_well_for_every_protected_group(
        artefact):
    """Equal amplitude is not enough: what the face puts in the trace's way counts too. A matched
    filter that knows each face's template detects the trace (at a tenth of its strength, far
    from the ceiling) as well on both values of every protected attribute: the mean difference
    over four draws is within three standard errors or 0.015 of zero. The luminance knob opens a
    gap of more than 0.08 on skin tone."""
    draws = [detectability(2000, 24, artefact, seed=seed, strength=0.016) for seed in range(4)]
    for a in PROTECTED:
        diffs = np.array([d[(a, 1)] - d[(a, 0)] for d in draws])
        assert 0.6 < np.mean([d[(a, 0)] for d in draws]) < 0.95, a       # informative, not at the ceiling
        assert abs(diffs.mean()) < max(3 * diffs.std(ddof=1) / 2, 0.015), (a, diffs)
    planted = detectability(2000, 24, artefact, seed=3, strength=0.016, luminance_scaling=1.0)
    assert planted[("skin", 0)] - planted[("skin", 1)] > 0.08


def test_the_luminance_knob_plants_a_fainter_trace_on_dark_skin():
    vis = artefact_visibility(make_faces(3000, 24, "blend", luminance_scaling=1.0, seed=0))
    assert vis[("skin", 1)] < 0.7 * vis[("skin", 0)]
    with pytest.raises(ValueError, match="luminance_scaling"):
        make_faces(10, luminance_scaling=2.0)


def test_a_manipulated_twin_differs_from_its_genuine_face_by_the_trace_alone():
    for artefact in ARTEFACTS:
        genuine, fake = manipulated_twin(24, artefact, seed=4)
        changed = np.abs(fake - genuine) > 1e-6
        assert 0.05 < changed.mean() < 0.6                       # a ring or the face interior, not the image
        assert np.abs(fake - genuine).max() <= 2 * 0.16


def test_bad_parameters_are_refused():
    with pytest.raises(ParameterError, match="strictly between 0 and 1"):
        PARAMS.resolve(train_group_share=1.2)
    with pytest.raises(ParameterError, match="unknown parameter"):
        PARAMS.resolve(group_share=0.5)


def test_our_metrics_equal_aif360_on_a_hand_made_case():
    #           group 0 (privileged)        group 1 (unprivileged)
    y_true = np.array([1, 1, 0, 0, 1, 0,     1, 1, 0, 0, 0, 1])
    y_pred = np.array([1, 1, 0, 1, 0, 0,     1, 0, 1, 1, 0, 1])
    group = np.array([0] * 6 + [1] * 6)
    ours, theirs = numpy_metrics(y_true, y_pred, group), aif360_metrics(y_true, y_pred, group)
    for name in METRICS:
        assert ours[name] == pytest.approx(theirs[name]), name
    # by hand: selection 3/6 vs 4/6; TPR 2/3 vs 2/3; FPR 1/3 vs 2/3; error 2/6 vs 3/6
    assert ours["statistical_parity_difference"] == pytest.approx(4 / 6 - 3 / 6)
    assert ours["false_positive_rate_difference"] == pytest.approx(2 / 3 - 1 / 3)
    assert ours["equalized_odds_difference"] == pytest.approx(1 / 3)
    assert confusion_by_group(y_true, y_pred, group)[0].tolist() == [[2, 1], [1, 2]]


def test_fairness_table_averages_aif360_over_detectors_with_intervals_around_it():
    rng = np.random.default_rng(0)
    y, g = rng.integers(0, 2, 600), rng.integers(0, 2, 600)
    preds = [np.where(rng.random(600) < 0.8, y, 1 - y) for _ in range(2)]
    table = fairness_table(y, preds, g, rounds=200, seed=1)
    expected = np.mean([aif360_metrics(y, p, g)["false_positive_rate_difference"] for p in preds])
    row = table.loc["false_positive_rate_difference"]
    assert row["value"] == pytest.approx(expected)
    assert row["ci_low"] < row["value"] < row["ci_high"] and row["ci_high"] - row["ci_low"] < 0.2
    assert list(table.index) == list(METRICS)


class Linear(nn.Module):
    """Two logits w·x and -w·x: the boundary is the hyperplane w·x + b = 0."""

    def __init__(self, w, b):
        super().__init__()
        self.w, self.b = torch.tensor(w, dtype=torch.float32), float(b)

    def forward(self, x):
        s = x.float().flatten(1) @ self.w + self.b
        return torch.stack([-s, s], 1)


def test_deepfool_finds_the_exact_distance_of_a_linear_model():
    rng = np.random.default_rng(0)
    w = rng.normal(size=3 * 4 * 4)
    model = Linear(w, 0.0)
    x = rng.uniform(0.3, 0.7, (20, 3, 4, 4)).astype(np.float32)
    exact = np.abs(x.reshape(20, -1) @ w) / np.linalg.norm(w)
    classify = lambda a: model(torch.tensor(a)).argmax(1).numpy()  # noqa: E731
    d, flipped = attack_distances(deepfool(white_box(model, 4), overshoot=1e-4), classify, x)
    assert flipped.all()
    assert np.allclose(d, exact, rtol=0.02)


def test_robustness_bias_curves_on_known_distances():
    d = np.array([0.5, 1.0, 1.5, 2.0, 0.1, 0.2, 0.3, np.inf])
    g = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    taus = np.array([0.0, 0.25, 0.75, 1.25, 1.75, 2.5])
    s = robustness_bias(d, g, taus)
    assert s["curve_privileged"].tolist() == [1, 1, 0.75, 0.5, 0.25, 0]
    assert s["curve_unprivileged"].tolist() == [1, 0.5, 0.25, 0.25, 0.25, 0.25]
    assert s["max_rb"] == 0.75            # exact: at tau = 0.3, all of group 0 and a quarter of group 1 (the grid misses it)
    assert s["success_unprivileged"] == 0.75 and s["success_privileged"] == 1.0
    assert survival(np.array([1.0, 2.0]), np.array([1.5])).tolist() == [0.5]


def test_label_only_service_counts_queries_and_starting_points_cross_the_boundary():
    model = Linear(np.ones(3 * 2 * 2), -6.0)
    service = LabelOnlyService(model)
    x = np.stack([np.full((3, 2, 2), v, np.float32) for v in (0.2, 0.8, 0.9)])
    out = service(x)
    assert service.queries == 3 and out.tolist() == [[1, 0], [0, 1], [0, 1]]
    labels = out.argmax(1)
    start = starting_points(x, labels, labels, np.random.default_rng(0))
    assert (service(start).argmax(1) != labels).all()


def test_image_folder_loader_reads_what_the_test_wrote(tmp_path):
    from PIL import Image

    f = make_faces(4, 16, seed=3)
    with open(tmp_path / "labels.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["filename", "fake", "skin", "age"])
        for i in range(4):
            Image.fromarray((f.x[i].transpose(1, 2, 0) * 255).round().astype(np.uint8)).save(tmp_path / f"{i}.png")
            writer.writerow([f"{i}.png", f.y[i], f.attributes["skin"][i], f.attributes["age"][i]])
    loaded = load_image_folder(tmp_path)
    assert loaded.x.shape == f.x.shape and np.abs(loaded.x - f.x).max() <= 1 / 255 + 1e-6
    assert loaded.y.tolist() == f.y.tolist()
    assert {k: v.tolist() for k, v in loaded.attributes.items()} == \
        {k: f.attributes[k].tolist() for k in ("skin", "age")}
    (tmp_path / "bad.csv").write_text("filename,skin\n0.png,1\n")
    with pytest.raises(ValueError, match="fake"):
        load_image_folder(tmp_path, "bad.csv")


@pytest.mark.parametrize("norm", [2, np.inf])
def test_pgd_minimum_budget_matches_the_exact_distance_of_a_linear_model(norm):
    """The distance to a hyperplane w.x = 0 is |w.x| / ||w||_q, q the dual norm (2 for L2, 1 for
    L-infinity); arithmetic bisection to 2^-12 of the range, geometric to about 0.1 %."""
    from ai4m_helpers.fairness.robustness_bias import pgd_min_distance

    rng = np.random.default_rng(1)
    w = rng.normal(size=3 * 4 * 4)
    model = Linear(w, 0.0)
    x = rng.uniform(0.4, 0.6, (10, 3, 4, 4)).astype(np.float32)
    labels = model(torch.tensor(x)).argmax(1).numpy()
    exact = np.abs(x.reshape(10, -1) @ w) / np.linalg.norm(w, ord=1 if norm == np.inf else 2)
    classifier = white_box(model, 4)
    top = 2.0 if norm == 2 else 0.5
    d = pgd_min_distance(classifier, x, labels, eps_max=top, bisections=12, batch_size=4, norm=norm)
    assert np.allclose(d, exact, atol=top / 2 ** 12 + 1e-3)
    geo = pgd_min_distance(classifier, x, labels, eps_max=top, eps_min=1e-4, bisections=14, batch_size=4, norm=norm)
    big = exact > 1e-3
    assert np.allclose(geo[big], exact[big], rtol=0.02)               # the same relative resolution everywhere
    far = pgd_min_distance(classifier, x, labels, eps_max=1e-4, bisections=2, norm=norm)
    assert np.all(np.isinf(far[exact > 1e-3]))                       # out of reach: +inf


def test_the_largest_gap_is_the_kolmogorov_smirnov_statistic_and_its_relabellings_match_a_loop():
    """The chapter's core quantity, cross-checked with scipy's two-sample KS test; NaN (images
    left out) are dropped, +inf (failed attacks) lie beyond every budget."""
    from scipy.stats import ks_2samp

    from ai4m_helpers.fairness.robustness_bias import max_gap, max_gap_under_relabelling

    rng = np.random.default_rng(0)
    d = np.abs(rng.normal(size=60))
    g = np.repeat([0, 1], 30)
    d[g == 1] *= 1.5
    assert max_gap(d, g) == pytest.approx(ks_2samp(d[g == 0], d[g == 1]).statistic)
    d2 = d.copy()
    d2[[3, 40]] = np.nan
    keep = ~np.isnan(d2)
    assert max_gap(d2, g) == pytest.approx(ks_2samp(d[keep & (g == 0)], d[keep & (g == 1)]).statistic)
    d3 = d.copy()
    d3[[1, 2]] = np.inf                                           # two failed attacks in group 0
    big = d.copy()
    big[[1, 2]] = 1e9
    assert max_gap(d3, g) == pytest.approx(ks_2samp(big[g == 0], big[g == 1]).statistic)
    labels = np.stack([rng.permutation(g) for _ in range(30)])
    looped = [max_gap(d2, row) for row in labels]
    assert np.allclose(max_gap_under_relabelling(d2, labels.astype(float)), looped)


def test_the_share_of_closer_pairs_is_the_mann_whitney_statistic():
    """Cross-checked with scipy: P(closer) = U / (n1 n2), ties half, +inf beyond every distance."""
    from scipy.stats import mannwhitneyu

    from ai4m_helpers.fairness.experiment import _mann_whitney

    rng = np.random.default_rng(5)
    a, b = rng.integers(0, 6, 30).astype(float), rng.integers(1, 7, 40).astype(float)   # many ties
    assert _mann_whitney(a, b) == pytest.approx(mannwhitneyu(b, a).statistic / (30 * 40))
    a[:3], b[:5] = np.inf, np.inf
    big_a, big_b = np.where(np.isinf(a), 99.0, a), np.where(np.isinf(b), 99.0, b)
    assert _mann_whitney(a, b) == pytest.approx(mannwhitneyu(big_b, big_a).statistic / (30 * 40))


def test_attacked_images_are_balanced_over_skin_and_label_and_the_black_box_ones_lie_among_them():
    from ai4m_helpers.fairness.experiment import attacked_subset

    f = make_faces(400, 16, seed=2)
    skin = f.attributes["skin"]
    white, black = attacked_subset(skin, f.y, 40), attacked_subset(skin, f.y, 16)
    for g in (0, 1):
        for label in (0, 1):
            assert ((skin[white] == g) & (f.y[white] == label)).sum() == 10
            assert ((skin[black] == g) & (f.y[black] == label)).sum() == 4
    assert (white[np.isin(white, black)] == black).all()          # the same images, in the same order


def test_the_defended_detector_is_a_fine_tuned_copy_trained_through_art_and_differs_from_its_clean_control():
    from ai4m_helpers.fairness.models import predict
    from ai4m_helpers.fairness.train import adversarially_fine_tune, train_detector

    f = make_faces(300, 16, seed=0)
    base = train_detector(f.x, f.y, 1, seed=0, width=4)
    before = [p.detach().clone() for p in base.parameters()]
    defended = adversarially_fine_tune(base, f.x, f.y, epochs=1, seed=0, eps=0.01)
    assert defended is not base
    assert all(torch.equal(a, b) for a, b in zip(before, base.parameters()))       # the original is untouched
    assert any(not torch.equal(a, b) for a, b in zip(base.parameters(), defended.parameters()))
    again = adversarially_fine_tune(base, f.x, f.y, epochs=1, seed=0, eps=0.01)
    assert (predict(again, f.x) == predict(defended, f.x)).all()                    # seeded: reproducible
    assert not defended.training
    # the trainer really attacks: ART's PGD runs in every batch of the defended detector's training
    from art.attacks.evasion import ProjectedGradientDescent

    calls = []
    original = ProjectedGradientDescent.generate

    def counting(self, *args, **kwargs):
        calls.append(len(args[0]) if args else len(kwargs["x"]))
        return original(self, *args, **kwargs)

    ProjectedGradientDescent.generate = counting
    try:
        adversarially_fine_tune(base, f.x, f.y, epochs=1, seed=0, eps=0.01, batch_size=100)
    finally:
        ProjectedGradientDescent.generate = original
    assert calls == [50, 50, 50]                                   # half of each of the three batches
