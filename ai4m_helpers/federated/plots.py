"""Chapter 5's figures."""
from __future__ import annotations

import numpy as np
from matplotlib.ticker import NullFormatter, ScalarFormatter

PHASES = {"train_s": ("local training", "tab:blue"), "encrypt_s": ("encryption", "tab:orange"),
          "aggregate_s": ("aggregation (server)", "tab:green"), "decrypt_s": ("decryption", "tab:red")}


def spectrograms(axes, features: np.ndarray, titles: list[str]) -> None:
    """Log-mel spectrograms (bands × frames), one per axis."""
    for ax, f, title in zip(axes, features, titles):
        ax.imshow(f, origin="lower", aspect="auto", cmap="magma")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("frame (16 ms)")
        ax.grid(False)
    axes[0].set_ylabel("mel band")


def client_mix(ax, counts: np.ndarray, names: tuple) -> None:
    """Clips of each surface held by each client (the non-IID split)."""
    bottom = np.zeros(len(counts))
    for c, name in enumerate(names):
        ax.bar(np.arange(len(counts)), counts[:, c], bottom=bottom, label=name)
        bottom += counts[:, c]
    ax.set_xlabel("client")
    ax.set_ylabel("training clips")
    ax.set_xticks(np.arange(len(counts)))
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))


def accuracy_curves(ax, curves, labels: list[str], chance: float) -> None:
    """Test accuracy of the global model after each round: mean over seeds with the range."""
    styles = {0: "-", 1: "--"}
    for i, label in enumerate(labels):
        part = curves[curves["run"] == label].groupby("round")["accuracy"]
        mean, lo, hi = part.mean(), part.min(), part.max()
        line, = ax.plot(mean.index, mean.values, styles.get(i, "-"), lw=1.5 if i < 2 else 1, label=label)
        ax.fill_between(mean.index, lo.values, hi.values, color=line.get_color(), alpha=0.12)
    ax.axhline(chance, color="black", lw=0.6, alpha=0.5)
    ax.set_xlabel("round")
    ax.set_ylabel("test accuracy")
    ax.legend(fontsize=7)


def round_costs(ax, costs) -> None:
    """Mean time of one round per phase (a client's phases, the server's aggregation)."""
    means = costs.groupby("run", sort=False)[list(PHASES)].mean()
    left = np.zeros(len(means))
    for phase, (name, colour) in PHASES.items():
        ax.barh(means.index, means[phase] * 1e3, left=left, color=colour, label=name)
        left += means[phase].to_numpy() * 1e3
    ax.set_xlabel("milliseconds per round")
    ax.legend(fontsize=7)


def cost_sweep(axes, sweep, fits) -> None:
    """Left: times against the number of parameters with their straight-line fits; right: the
    server's memory and one client's bytes."""
    p = np.sort(sweep["parameters"].unique())
    for measure, colour, name in (("encrypt_s", "tab:orange", "encryption (one client)"),
                                  ("aggregate_s", "tab:green", "aggregation (server)"),
                                  ("decrypt_s", "tab:red", "decryption")):
        axes[0].plot(sweep["parameters"], sweep[measure] * 1e3, "o", color=colour, ms=3, alpha=0.6)
        fit = fits[fits["measure"] == measure] if measure in set(fits["measure"]) else None
        if fit is not None and len(fit):
            axes[0].plot(p, (fit["intercept"].mean() + fit["per parameter"].mean() * p) * 1e3, color=colour,
                         label=f"{name}: {fit['per parameter'].mean() * 1e6:.2f} µs per parameter")
        else:
            axes[0].plot([], [], "o", color=colour, label=name)
    axes[0].set_xlabel("parameters")
    axes[0].set_ylabel("milliseconds")
    axes[0].legend(fontsize=7)
    for measure, colour, name in (("memory_bytes", "tab:purple", "server memory, all clients"),
                                  ("bytes_per_client", "tab:brown", "ciphertext sent by one client")):
        axes[1].plot(sweep["parameters"], sweep[measure] / 1e6, "o-", color=colour, ms=3, label=name)
    axes[1].plot(p, 4 * p / 1e6, ":", color="black", label="the same weights in float32")
    axes[1].set_xlabel("parameters")
    axes[1].set_ylabel("MB")
    axes[1].legend(fontsize=7)


def dp_tradeoff(ax, runs, plain_label: str, clipped_label: str) -> None:
    """Final test accuracy against ε (mean over seeds, with the range), and the non-private
    runs as horizontal lines."""
    private = runs[np.isfinite(runs["ε"])]
    stats = private.groupby("ε")["accuracy"].agg(["mean", "min", "max"]).sort_index()
    ax.errorbar(stats.index, stats["mean"], yerr=[stats["mean"] - stats["min"], stats["max"] - stats["mean"]],
                fmt="o-", capsize=3, label="DP-FedAvg")
    for label, style in ((plain_label, "--"), (clipped_label, ":")):
        ax.axhline(runs[runs["run"] == label]["accuracy"].mean(), ls=style, color="black", lw=1, label=label)
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xticks(stats.index)
    ax.set_xlabel("ε (log scale)")
    ax.set_ylabel("test accuracy")
    ax.legend(fontsize=7)


def server_view(ax_plain, ax_cipher, attack, frequencies: dict, names: tuple) -> None:
    """Left: the server's guess of each client's most frequent surface from its plaintext update,
    against the truth. Right: the byte values of a client's ciphertext and of a ciphertext of
    zeros: the same distribution, whatever was encrypted."""
    hits = attack["hit"].to_numpy()
    x = np.arange(len(attack))
    ax_plain.scatter(x, attack["majority"], s=60, facecolors="none", edgecolors="black", label="true majority")
    ax_plain.scatter(x[hits], attack["guess"][hits], s=18, color="tab:green", label="server's guess (right)")
    ax_plain.scatter(x[~hits], attack["guess"][~hits], s=18, color="tab:red", label="server's guess (wrong)")
    ax_plain.set_yticks(range(len(names)), names)
    ax_plain.set_xlabel("client (all seeds)")
    ax_plain.set_title("from a plaintext update", fontsize=9)
    ax_plain.legend(fontsize=7)
    for (label, freq), colour in zip(frequencies.items(), ("tab:grey", "tab:orange")):
        ax_cipher.step(np.arange(256), freq, where="mid", color=colour, lw=1, label=label)
    ax_cipher.axhline(1 / 256, color="black", lw=0.8, ls="--", label="uniform")
    ax_cipher.set_xlabel("byte value")
    ax_cipher.set_ylabel("frequency")
    ax_cipher.set_title("from the ciphertext: its bytes", fontsize=9)
    ax_cipher.legend(fontsize=7)
