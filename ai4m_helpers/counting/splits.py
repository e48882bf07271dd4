"""Which shapes train and which are unseen, and the seed of the unannotated pretraining pool.
Light on purpose: the parameter checks and the pretraining script both read it."""
from __future__ import annotations

from ..data.counting import NOUNS

# Unseen at test time by every model of the chapter (the pretrained UNet, the ControlNet, the
# counters), as FSC-147's test classes are unseen in training.
TEST_SHAPES = ("diamond", "ring", "cross")
TRAIN_SHAPES = tuple(s for s in NOUNS if s not in TEST_SHAPES)
# Scene i of a set is a function of (seed, i); the pool's seed is far from any run seed.
POOL_SEED = 7_000_003
