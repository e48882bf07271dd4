"""The chapter's submissions, as participants would write them: five methods, and faulty ones,
each with the status the platform must give it. A submission defines ``fit(X, y) -> model`` and
``predict(model, X) -> labels``."""
from __future__ import annotations

METHODS = {
    "logistic regression": """
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

def fit(X, y):
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(X, y)

def predict(model, X):
    return model.predict(X)
""",
    "k nearest neighbours": """
from sklearn.neighbors import KNeighborsClassifier

def fit(X, y):
    # brute force: every prediction compares with every training example
    return KNeighborsClassifier(n_neighbors=3, algorithm="brute").fit(X, y)

def predict(model, X):
    return model.predict(X)
""",
    "random forest": """
from sklearn.ensemble import RandomForestClassifier

def fit(X, y):
    return RandomForestClassifier(n_estimators=100, random_state=0).fit(X, y)

def predict(model, X):
    return model.predict(X)
""",
    "small MLP": """
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

def fit(X, y):
    return make_pipeline(StandardScaler(), MLPClassifier((64,), max_iter=300, random_state=0)).fit(X, y)

def predict(model, X):
    return model.predict(X)
""",
    "most frequent class": """
import numpy as np

def fit(X, y):
    return np.bincount(y).argmax()

def predict(model, X):
    return np.full(len(X), model)
""",
}

# A torch model, entered in the `full` profile: the ingestion program counts its FLOPs. It trains
# on the GPU where its competition grants one and the worker has one, deterministically on both.
TORCH_CNN = """
import numpy as np
import torch
from torch import nn

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"

def fit(X, y):
    torch.manual_seed(0)
    torch.use_deterministic_algorithms(True, warn_only=True)   # CUDA lacks a few; it says which
    model = nn.Sequential(nn.Unflatten(1, (1, 8, 8)), nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(),
                          nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.AvgPool2d(4), nn.Flatten(),
                          nn.Linear(128, 10)).to(DEVICE)
    x = torch.as_tensor(X / 16.0, dtype=torch.float32, device=DEVICE)
    t = torch.as_tensor(y, device=DEVICE)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    order = torch.Generator().manual_seed(0)
    for _ in range(30):
        for idx in torch.randperm(len(t), generator=order).split(64):
            idx = idx.to(DEVICE)
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[idx]), t[idx]).backward()
            opt.step()
    return model.eval()

def predict(model, X):
    with torch.no_grad():
        x = torch.as_tensor(X / 16.0, dtype=torch.float32, device=DEVICE)
        return model(x).argmax(1).cpu().numpy()
"""

# name -> (kind, payload, expected failure). {db} becomes the platform's database path, {nan_csv}
# a result file with a row for every test example and one NaN label, {memory_mb} the run's
# memory limit.
FAULTY = {
    "crash": ("code", """
def fit(X, y):
    raise RuntimeError("a bug in training")

def predict(model, X):
    return X[:, 0]
""", "crash"),
    "sleeps past the limit": ("code", """
import time

def fit(X, y):
    time.sleep(600)

def predict(model, X):
    return X[:, 0]
""", "timeout"),
    "wrong length": ("code", """
import numpy as np

def fit(X, y):
    return 0

def predict(model, X):
    return np.zeros(len(X) - 1, dtype=int)
""", "malformed output"),
    "NaN": ("code", """
import numpy as np

def fit(X, y):
    return 0

def predict(model, X):
    out = np.zeros(len(X))
    out[3] = np.nan
    return out
""", "malformed output"),
    "reads the hidden labels": ("code", """
def fit(X, y):
    return open("{db}", "rb").read()       # the platform's database, with the hidden labels

def predict(model, X):
    return [0] * len(X)
""", "crash"),
    "fork bomb": ("code", """
import os

def fit(X, y):
    while True:
        os.fork()

def predict(model, X):
    return [0] * len(X)
""", "crash"),
    "memory hog": ("code", """
import numpy as np

def fit(X, y):
    return np.ones((50_000, 50_000))

def predict(model, X):
    return [0] * len(X)
""", "memory"),
    # Four processes, each well under the limit, together a third over it: a per-process limit
    # (rlimits) lets it through; the run's control group does not.
    "memory hog in four processes": ("code", """
import os
import signal
import numpy as np

def fit(X, y):
    ready, done = os.pipe()
    children = []
    for _ in range(4):
        pid = os.fork()
        if pid == 0:
            os.close(ready)
            held = np.ones({memory_mb} * 2**20 // 3 // 8)
            os.write(done, b"1")                # holding its share
            os.close(done)
            signal.pause()                      # until the parent has seen all four
        children.append(pid)
    os.close(done)
    held = 0
    while os.read(ready, 1):                    # ends when every child has written or died
        held += 1
    gone = [pid for pid in children if os.waitpid(pid, os.WNOHANG)[0]]    # died before release
    for pid in set(children) - set(gone):
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    if held < 4 or gone:
        raise RuntimeError(f"{len(gone) or 4 - held} of 4 processes could not keep their share")
    return 0

def predict(model, X):
    return [0] * len(X)
""", "memory"),
    "writes no predictions": ("code", """
import os

def fit(X, y):
    return 0

def predict(model, X):
    os._exit(0)
""", "missing file"),
    "result file with a NaN": ("result", "{nan_csv}", "refused"),     # every row, one label NaN
    "code without predict()": ("code", """
def fit(X, y):
    return 0
""", "refused"),
}

# Not a fault of the platform but of the benchmark: digits ship with scikit-learn, so the "hidden"
# labels are one lookup away. Every test image is in the public dataset, once, with its label.
CHEAT = """
import numpy as np
from sklearn.datasets import load_digits

def fit(X, y):
    data = load_digits()
    return {row.tobytes(): label for row, label in zip(data.data.astype(X.dtype), data.target)}

def predict(table, X):
    return np.array([table.get(row.tobytes(), 0) for row in X])
"""
