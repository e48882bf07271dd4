"""The benchmarking platform's Ray backend: Ray tasks on a local instance drain the queue and
give the same results as the local worker processes."""
from __future__ import annotations

import shutil

import pytest

from ai4m_helpers.benchmarking.platform import Platform, run_workers
from benchmarking_support import bundle

BUNDLE = bundle("wine", share=0.25)

# Three quick submissions, numpy only: a majority class, nearest centroid, one nearest neighbour.
SUBMISSIONS = {
    "majority": b"""import numpy as np
def fit(X, y):
    return int(np.bincount(y).argmax())
def predict(m, X):
    return np.full(len(X), m)
""",
    "centroid": b"""import numpy as np
def fit(X, y):
    mu, sd = X.mean(0), X.std(0) + 1e-9
    classes = np.unique(y)
    return mu, sd, classes, np.stack([((X[y == c] - mu) / sd).mean(0) for c in classes])
def predict(m, X):
    mu, sd, classes, centres = m
    d = (((X - mu) / sd)[:, None, :] - centres[None]) ** 2
    return classes[d.sum(-1).argmin(1)]
""",
    "1nn": b"""import numpy as np
def fit(X, y):
    mu, sd = X.mean(0), X.std(0) + 1e-9
    return mu, sd, (X - mu) / sd, y
def predict(m, X):
    mu, sd, Z, y = m
    d = ((((X - mu) / sd)[:, None, :] - Z[None]) ** 2).sum(-1)
    return y[d.argmin(1)]
""",
}


def _queue(data_dir):
    platform = Platform(data_dir)
    platform.create("wine", BUNDLE)
    token = platform.register("ada")
    ids = [platform.submit(token, "wine", "main", "code", code, label) for label, code in SUBMISSIONS.items()]
    return platform, token, ids


def _results(platform, token, ids) -> dict:
    out = {}
    for sid in ids:
        s = platform.submission(token, sid)
        out[s["label"]] = (s["status"], s["failure"], s["attempts"], platform.store.get(sid).scores)
    return out


def test_ray_workers_drain_the_queue_with_the_local_backends_results(tmp_path):
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'ai4m-helpers[course]')")
    local, local_token, local_ids = _queue(tmp_path / "local")
    remote, remote_token, remote_ids = _queue(tmp_path / "ray")
    try:
        assert run_workers(local, 2, backend="local") == local_ids
        expected = _results(local, local_token, local_ids)
        assert all(status == "finished" and attempts == 1 for status, _, attempts, _ in expected.values())
        assert expected["1nn"][3]["public"]["accuracy"] > expected["majority"][3]["public"]["accuracy"]

        assert run_workers(remote, 2, backend="ray") == remote_ids
        assert _results(remote, remote_token, remote_ids) == expected
        workers = {remote.store.get(sid).worker for sid in remote_ids}
        assert all(w.rsplit(":", 1)[1] in ("0", "1") for w in workers)       # claimed by the Ray tasks
        assert remote.store.claim("host:1:0") is None                         # nothing left queued
    finally:
        ray.shutdown()
        for p in (local, remote):
            p.store.engine.dispose()
            shutil.rmtree(p.runs_dir, ignore_errors=True)
