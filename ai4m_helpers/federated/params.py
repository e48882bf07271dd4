"""Chapter 5's knobs. Kept free of heavy imports: `ai4m list` and the runner read it.

The `full` profile adds seeds, a privacy level and sweep sizes but keeps the federation's size: encryption runs on the CPU (TenSEAL has no GPU path) and the in-process engine
runs the clients one after the other, so a GPU buys this chapter little time."""
from __future__ import annotations

from ..params import Param, ParamSpec

ENGINES = ("in-process", "simulation")
# CKKS settings a reader can pick: ring degree / scale bits (the modulus chain follows).
CKKS_SETTINGS = {
    "8192/40": (8192, (60, 40, 40, 60), 40),     # TenSEAL's tutorial setting, the reference note's
    "4096/20": (4096, (40, 20, 40), 20),         # smaller and faster, but too coarse for weights
    "16384/40": (16384, (60, 40, 40, 40, 40, 60), 40),
}


def _increasing(values: list) -> str | None:
    if sorted(set(values)) != list(values):
        return "list each value once, in increasing order"
    return None


def _enough_clips(values: dict) -> str | None:
    clips = values["train_per_class"] * 4
    if clips < 2 * values["clients"]:
        return f"{values['clients']} clients need at least {2 * values['clients']} training clips (train_per_class x 4)"
    return None


PARAMS = ParamSpec({
    "seeds": Param(int, 3, full=5, min=1, max=50,
                   help="replicates (new clips, split, initial weights, keys and noise each)"),
    "clients": Param(int, 8, min=2, max=200, help="clients (sensors) of the federation"),
    "train_per_class": Param(int, 150, min=2, max=100000,
                             help="training clips per surface, over all clients"),
    "test_per_class": Param(int, 75, min=5, max=100000, help="common test clips per surface"),
    "alpha": Param(float, 0.5, min=0.01, max=1000.0,
                   help="Dirichlet α of the non-IID split (small: each client hears few surfaces)"),
    "width": Param(int, 64, min=4, max=4096, help="hidden width of the MLP"),
    "rounds": Param(int, 12, min=1, max=1000, help="federated rounds"),
    "local_epochs": Param(int, 2, min=1, max=100, help="local epochs per round (FedAvg's E)"),
    "lr": Param(float, 0.1, min=1e-5, max=10.0, help="local SGD learning rate"),
    "batch": Param(int, 16, min=1, max=100000, help="local batch size (FedAvg's B)"),
    "ckks": Param(str, "8192/40", choices=tuple(CKKS_SETTINGS),
                  help="CKKS ring degree / scale bits (the modulus chain follows)"),
    "clip": Param(float, 1.0, min=1e-6, max=1e6, help="DP-FedAvg's clipping norm S of a client's update"),
    "epsilons": Param(list, [8.0, 64.0], full=[8.0, 64.0, 512.0], item=float, min=0.01, max=1e5,
                      check=_increasing,
                      help="client-level ε of the DP-FedAvg runs (each gets the noise multiplier z that spends it)"),
    "dp_noise": Param(str, "server", choices=("server", "clients"),
                      help="who adds DP-FedAvg's noise: the server (central DP) or each client its share (distributed)"),
    "delta": Param(float, 1e-5, min=1e-12, max=0.1, help="δ of the (ε, δ) guarantee"),
    "dp_encrypted": Param(bool, False,
                          help="run the DP federations encrypted too (the noise is then added to ciphertexts)"),
    "sweep_ciphertexts": Param(list, [1, 2, 4, 8], full=[1, 2, 4, 8, 16], item=int,
                               min=1, max=4096, check=_increasing, min_items=3,
                               help="cost sweep: sizes in full ciphertexts (× slots parameters each)"),
    "sweep_clients": Param(int, 4, min=1, max=200, help="cost sweep: clients whose ciphertexts the server adds"),
    "sweep_repeats": Param(int, 6, min=2, max=50, help="repeats of the cost sweep (its replicates)"),
    "engine": Param(str, "in-process", choices=ENGINES,
                    help="where the Flower apps run: in this process, or Flower's simulation engine (Ray)"),
}, joint_checks=(_enough_clips,))
