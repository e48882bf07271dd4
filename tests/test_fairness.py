import csv

import numpy as np
import pytest
import torch
from torch import nn

from ai4m_helpers.data.faces import load_image_folder, make_faces
from ai4m_helpers.fairness import PARAMS
from ai4m_helpers.fairness.models import LabelOnlyService, white_box
from ai4m_helpers.fairness.metrics import (METRICS, aif360_metrics, confusion_by_group, fairness_table,
                                           numpy_metrics)
from ai4m_helpers.fairness.robustness_bias import (attack_distances, deepfool, robustness_bias,
                                                   starting_points, survival)
from ai4m_helpers.params import ParameterError


def test_generator_knobs_do_what_they_say():
    x, y, g, f = make_faces(4000, 16, group_share=0.2, fake_share=0.3, artefact_strength=(0.5, 0.0), seed=1)
    assert x.shape == (4000, 3, 16, 16) and 0 <= x.min() and x.max() <= 1
    assert g.mean() == pytest.approx(0.2, abs=0.02) and y.mean() == pytest.approx(0.3, abs=0.02)
    assert np.all(f["artefact_amplitude"][(g == 1)] == 0)          # no seam on group 1 at strength 0
    assert np.all(f["artefact_amplitude"][(g == 0) & (y == 1)] > 0)
    assert np.all(f["artefact_amplitude"][y == 0] == 0)            # genuine faces carry no seam
    # darker skin: lower luminance, so the same strength leaves a fainter seam
    _, y2, g2, f2 = make_faces(2000, 16, artefact_strength=(0.5, 0.5), seed=2)
    amp = f2["artefact_amplitude"]
    assert amp[(g2 == 1) & (y2 == 1)].mean() < 0.6 * amp[(g2 == 0) & (y2 == 1)].mean()
    with pytest.raises(ValueError):
        make_faces(10, group_share=1.0)


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
    assert s["max_rb"] == 0.5 and s["tau_at_max"] == 0.25      # first of the tied maxima
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

    x, y, g, _ = make_faces(4, 16, seed=3)
    with open(tmp_path / "labels.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["filename", "fake", "group", "source"])
        for i in range(4):
            Image.fromarray((x[i].transpose(1, 2, 0) * 255).round().astype(np.uint8)).save(tmp_path / f"{i}.png")
            writer.writerow([f"{i}.png", y[i], g[i], "camera"])
    xl, yl, gl, extra = load_image_folder(tmp_path)
    assert xl.shape == x.shape and np.abs(xl - x).max() <= 1 / 255 + 1e-6
    assert yl.tolist() == y.tolist() and gl.tolist() == g.tolist() and extra["source"].tolist() == ["camera"] * 4
    (tmp_path / "bad.csv").write_text("filename,fake\n0.png,1\n")
    with pytest.raises(ValueError, match="group"):
        load_image_folder(tmp_path, "bad.csv")


def test_pgd_minimum_budget_matches_the_exact_distance_of_a_linear_model():
    from ai4m_helpers.fairness.robustness_bias import pgd_min_distance

    rng = np.random.default_rng(1)
    w = rng.normal(size=3 * 4 * 4)
    model = Linear(w, 0.0)
    x = rng.uniform(0.4, 0.6, (10, 3, 4, 4)).astype(np.float32)
    labels = model(torch.tensor(x)).argmax(1).numpy()
    exact = np.abs(x.reshape(10, -1) @ w) / np.linalg.norm(w)
    classifier = white_box(model, 4)
    d = pgd_min_distance(classifier, x, labels, eps_max=2.0, bisections=12, batch_size=4)
    assert np.allclose(d, exact, atol=2.0 / 2 ** 12 + 1e-3)
    far = pgd_min_distance(classifier, x, labels, eps_max=1e-4, bisections=2)
    assert np.all(np.isinf(far[exact > 1e-3]))                 # out of reach: +inf
