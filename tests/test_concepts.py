import copy

import numpy as np
import pytest
import torch

from ai4m_helpers.concepts.captum_tools import (ConceptScore, class_sensitivity, concept_attribution,
                                                gap_activations)
from ai4m_helpers.concepts.evaluation import (class_mean_directions, direction_purity, purity,
                                              random_orthant_directions, random_subset_means)
from ai4m_helpers.concepts.models import ConceptCNN
from ai4m_helpers.concepts.pipeline import (SplitConfig, dead_units, model_scale, split_direction,
                                            svd_directions, top_images, ward_cut)


def planted(seed=0):
    """300 images in 6 units: 100 background images, and 3 groups of 40 that all fire unit 0
    strongly but differ in units 1-3 (a polysemantic unit 0 with three planted concepts)."""
    rng = np.random.default_rng(seed)
    background = np.abs(rng.normal(0, 0.3, (180, 6)))
    groups = []
    for g in range(3):
        centre = np.zeros(6)
        centre[0] = 5.0
        centre[1 + g] = 4.0
        groups.append(centre + rng.normal(0, 0.2, (40, 6)))
    acts = np.vstack([background] + groups)
    labels = np.array([3] * 180 + [0] * 40 + [1] * 40 + [2] * 40)
    return acts, labels


def test_pipeline_recovers_planted_concepts():
    acts, labels = planted()
    split = split_direction(acts, np.eye(6)[0], SplitConfig(top_n=120, threshold=0.3, relative=True))
    assert split.k == 3 and split.n_concepts == 3
    for members in split.members:                     # each concept is one planted group
        assert purity(labels[members]) == 1.0 and len(members) >= 35
    found = {int(np.argmax(v[1:4])) for v in split.vectors}
    assert found == {0, 1, 2}
    assert np.allclose(np.linalg.norm(split.vectors, axis=1), 1.0)


def test_absolute_cut_and_threshold_monotonicity():
    acts, _ = planted()
    counts = [split_direction(acts, np.eye(6)[0], SplitConfig(top_n=120, threshold=t)).k
              for t in (0.5, 5.0, 50.0, 500.0)]
    assert counts == sorted(counts, reverse=True) and counts[0] > counts[-1] == 1
    k, cut = ward_cut(acts[:50], 0.5, relative=True)
    assert cut > 0 and k >= 1


def test_small_clusters_and_outliers_are_dropped():
    acts, _ = planted()
    split = split_direction(acts, np.eye(6)[0], SplitConfig(top_n=120, threshold=0.3, relative=True,
                                                            min_cluster=41))
    assert split.n_concepts == 0 and split.vectors.shape == (0, 6)


def test_purity_on_known_cases():
    assert purity(np.array([1, 1, 2, 1])) == 0.75
    acts, labels = planted()
    assert direction_purity(acts, labels, np.eye(6)[1], 40) == 1.0      # unit 1 is group 0 alone
    assert direction_purity(acts, labels, np.eye(6)[0], 120) == pytest.approx(1 / 3)


def test_dot_and_cosine_rankings_differ_on_norm():
    acts = np.array([[10.0, 10.0], [1.0, 0.0]])
    v = np.array([1.0, 0.0])
    assert top_images(acts, v, 1, "dot").tolist() == [0]
    assert top_images(acts, v, 1, "cosine").tolist() == [1]


def test_dead_units_are_found():
    acts = np.random.default_rng(0).random((50, 4))
    acts[:, 2] = 0.0
    assert dead_units(acts).tolist() == [False, False, True, False]


def test_svd_directions_are_orthonormal_and_point_into_the_data():
    acts, _ = planted()
    v = svd_directions(acts)
    assert np.allclose(v @ v.T, np.eye(6), atol=1e-8)
    assert np.all((acts @ v.T).mean(0) >= 0)
    assert model_scale(acts, 50) > 0


def test_controls_have_the_right_shapes():
    acts, labels = planted()
    rng = np.random.default_rng(0)
    split = split_direction(acts, np.eye(6)[0], SplitConfig(top_n=120, threshold=0.3, relative=True))
    subsets = random_subset_means(acts, split, rng)
    assert subsets.shape == split.vectors.shape
    r = random_orthant_directions(5, 6, rng)
    assert r.shape == (5, 6) and np.all(r >= 0) and np.allclose(np.linalg.norm(r, axis=1), 1)
    reference = class_mean_directions(acts, labels, 4)
    assert reference.shape == (4, 6) and direction_purity(acts, labels, reference[1], 40) == 1.0


def test_captum_tools_on_a_tiny_cnn():
    torch.manual_seed(0)
    model = ConceptCNN(1, 3, width=4, channels=5).eval()
    x = torch.rand(6, 1, 8, 8)
    acts = gap_activations(model, model.analysed_layer, x)
    with torch.no_grad():
        expected = model.pool(model.features(x)).flatten(1).numpy()
    assert np.allclose(acts, expected, atol=1e-6)
    v = np.ones(5) / np.sqrt(5)
    attr = concept_attribution(model, model.analysed_layer, v, x[:2], steps=64)
    assert attr.shape == (2, 1, 8, 8)
    # Integrated gradients are complete: per image they add up to score(x) - score(baseline 0).
    score = ConceptScore(model, model.analysed_layer, v)
    with torch.no_grad():
        gain = (score(x[:2]) - score(torch.zeros_like(x[:2]))).squeeze(1).numpy()
    assert np.allclose(attr.reshape(2, -1).sum(1), gain, rtol=0.05, atol=1e-4)
    # Each class's directional derivative along v, against central finite differences.
    sens = class_sensitivity(model.head, acts, v, 3)
    head64 = copy.deepcopy(model.head).double()
    a, h = torch.tensor(acts, dtype=torch.float64), 1e-6
    with torch.no_grad():
        fd = ((head64(a + h * torch.tensor(v)) - head64(a - h * torch.tensor(v))) / (2 * h)).numpy()
    assert np.allclose(sens["derivative"], fd.mean(0), atol=1e-5)
    assert np.array_equal(sens["tcav"], (fd > 0).mean(0))


def test_the_cut_is_chosen_by_the_silhouette_rule_stated_in_advance():
    from ai4m_helpers.concepts import experiment as ex
    from ai4m_helpers.concepts.pipeline import silhouette

    acts, _ = planted()
    unit0 = np.eye(6)[0]
    fractions = (0.02, 0.3, 1.5)              # too fine, right (three planted groups), too coarse
    sweep = {f: [split_direction(acts, unit0, SplitConfig(top_n=120, threshold=f, relative=True))]
             for f in fractions}
    assert [sweep[f][0].k for f in fractions][1] == 3 and sweep[1.5][0].k == 1
    assert silhouette(acts, sweep[1.5][0]) == 0.0                     # one cluster: no structure
    curve = ex.cut_curve(acts, sweep)
    assert list(curve["share split"])[1:] == [1.0, 0.0]
    assert ex.choose_cut({"cut_rule": "silhouette", "threshold": 0.9}, curve) == 0.3
    assert ex.choose_cut({"cut_rule": "fixed", "threshold": 0.9}, curve) == 0.9
    tie = curve.assign(silhouette=[0.5, 0.5, 0.0])
    assert ex.choose_cut({"cut_rule": "silhouette", "threshold": 0.9}, tie) == 0.3    # highest of the best


def test_a_structureless_neuron_is_left_whole_by_the_rule():
    from ai4m_helpers.concepts import experiment as ex
    from ai4m_helpers.concepts.pipeline import excess_silhouette

    rng = np.random.default_rng(3)
    acts = np.abs(rng.multivariate_normal(np.full(6, 3.0), np.diag([2.0, 1.0, 1.0, 0.5, 0.5, 0.5]), 300))
    unit0 = np.eye(6)[0]
    sweep = {f: [split_direction(acts, unit0, SplitConfig(top_n=120, threshold=f, relative=True))]
             for f in (0.1, 1.5)}
    assert sweep[0.1][0].k >= 2 and sweep[1.5][0].k == 1
    assert excess_silhouette(acts, sweep[0.1][0]) < 0.05          # k-means on a blob beats no null
    assert ex.choose_cut({"cut_rule": "silhouette", "threshold": 0.5}, ex.cut_curve(acts, sweep)) == 1.5
