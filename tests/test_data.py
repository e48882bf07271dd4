import pickle

import numpy as np
import pytest

from ai4m_helpers.data.cifar import load_cifar10
from ai4m_helpers.data.digits import add_label_noise, load_digits_splits


def test_digits_splits_are_disjoint_stratified_and_noisy_only_in_training():
    s = load_digits_splits(500, 500, label_noise=0.3, seed=1)
    assert (len(s["train"]), len(s["val"]), len(s["test"])) == (500, 500, 797)
    assert s["train"].x.min() >= 0 and s["train"].x.max() <= 1 and s["train"].x.dtype == np.float32
    wrong = (s["train"].y != s["train_clean_labels"].y).mean()
    assert 0.2 < wrong < 0.33          # 30 % resampled uniformly: about 27 % end up wrong
    assert np.bincount(s["val"].y).min() >= 45
    rows = {tuple(r) for r in s["train"].x} | {tuple(r) for r in s["val"].x}
    assert not any(tuple(r) in rows for r in s["test"].x[:50])


def test_label_noise_rate_and_mask():
    rng = np.random.default_rng(0)
    y = np.zeros(10000, dtype=int)
    noisy, changed = add_label_noise(y, 0.5, 10, rng)
    assert changed.mean() == pytest.approx(0.45, abs=0.02)
    assert np.array_equal(changed, noisy != y)


def write_cifar_batch(path, n, seed):
    rng = np.random.default_rng(seed)
    batch = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
             b"labels": rng.integers(0, 10, n).tolist()}
    with open(path, "wb") as fh:
        pickle.dump(batch, fh)
    return batch


def test_cifar_loader_reads_the_published_layout(tmp_path):
    root = tmp_path / "cifar-10-batches-py"
    root.mkdir()
    batches = [write_cifar_batch(root / f"data_batch_{i}", 4, i) for i in range(1, 6)]
    test = write_cifar_batch(root / "test_batch", 3, 9)
    x, y = load_cifar10(tmp_path, "train")
    assert x.shape == (20, 3, 32, 32) and x.dtype == np.float32 and y.shape == (20,)
    first = batches[0][b"data"][0].reshape(3, 32, 32) / 255.0
    assert np.allclose(x[0], first)
    assert y.tolist()[:4] == batches[0][b"labels"]
    xt, yt = load_cifar10(root, "test")
    assert xt.shape == (3, 3, 32, 32) and yt.tolist() == test[b"labels"]


def test_cifar_loader_says_what_is_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="data_batch_1"):
        load_cifar10(tmp_path)


def test_shapes_generator_factors_are_what_the_images_show():
    from ai4m_helpers.data.shapes import COLOURS, SHAPES, TEXTURES, make_shapes

    x, y, f = make_shapes(600, 32, seed=3)
    assert x.shape == (600, 3, 32, 32) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1
    assert np.array_equal(y, f["shape"]) and set(y) == set(range(len(SHAPES)))
    again, _, _ = make_shapes(600, 32, seed=3)
    assert np.array_equal(x, again)                          # the seed fixes everything
    palette = np.array(list(COLOURS.values()), dtype=np.float32)
    # The ring's centre is a hole and the half disc's centre lies on its edge; every other shape
    # covers its centre, where a plain texture shows the shape's colour exactly.
    covered = ~np.isin(f["shape"], [SHAPES.index("ring"), SHAPES.index("half_disc")])
    plain = (f["texture"] == TEXTURES.index("plain")) & covered
    assert plain.sum() >= 40
    for i in np.flatnonzero(plain)[:40]:
        cy, cx = int(round(f["cy"][i])), int(round(f["cx"][i]))
        assert np.allclose(x[i, :, cy, cx], palette[f["colour"][i]], atol=1e-6)
