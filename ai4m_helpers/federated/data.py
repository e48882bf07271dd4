"""Chapter 5's data: impact sounds of metal balls with different surfaces, their log-mel
features, and non-IID splits over clients.

The paper's recordings (balls rolling and bouncing on a plate, the ball's surface to be told
apart, a proxy for fault detection in industrial sound) are not public. The generator makes
clips of the same kind: a train of impacts, each a few exponentially damped partials of the
ball's modes, plus the rolling noise whose band and level depend on the surface, plus background
noise at a random signal-to-noise ratio. Ball size, impact rate and loudness are drawn from the
same ranges for every surface, so only the surface's texture tells the classes apart, and
classes overlap where texture noise drowns in background noise.

Every clip is a function of (seed, clip index) alone: a client in another process (Flower's
simulation or deployment engines) regenerates exactly its own clips from the run's settings.
"""
from __future__ import annotations

import dataclasses
import pathlib

import numpy as np

SURFACES = ("smooth", "brushed", "knurled", "dented")
SAMPLE_RATE = 8000
# Texture of each surface: centre (Hz) and relative width of its rolling-noise band, its level
# relative to the impacts, and how irregular its impacts are (a dent makes a double hit).
TEXTURE = {
    "smooth": dict(band=900.0, width=0.5, level=0.15, double_hit=0.0),
    "brushed": dict(band=1700.0, width=0.35, level=0.25, double_hit=0.0),
    "knurled": dict(band=2600.0, width=0.25, level=0.35, double_hit=0.1),
    "dented": dict(band=1300.0, width=0.6, level=0.2, double_hit=0.6),
}
# Mode ratios of a free sphere's first bending modes (rounded), shared by every ball.
MODE_RATIOS = np.array([1.0, 1.53, 2.05, 2.56, 3.03, 3.5])
FRAME, HOP, MELS = 256, 128, 40


@dataclasses.dataclass
class Sounds:
    """Clips (n, samples) with their surface labels."""

    audio: np.ndarray
    labels: np.ndarray
    sample_rate: int = SAMPLE_RATE

    def __len__(self) -> int:
        return len(self.labels)


def _band_noise(rng: np.random.Generator, n: int, centre: float, width: float, sr: int) -> np.ndarray:
    """White noise shaped by a Gaussian band around ``centre`` (relative width ``width``)."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / sr)
    spectrum *= np.exp(-0.5 * ((freqs - centre) / (width * centre)) ** 2)
    out = np.fft.irfft(spectrum, n)
    return out / (out.std() + 1e-12)


def _impact(rng: np.random.Generator, n: int, f0: float, sr: int) -> np.ndarray:
    """One hit: 3-6 partials of the ball's modes, each with its own damping."""
    t = np.arange(n) / sr
    partials = int(rng.integers(3, 7))
    out = np.zeros(n)
    for ratio in MODE_RATIOS[:partials]:
        f = f0 * ratio * (1 + 0.02 * rng.standard_normal())
        if f >= sr / 2:
            break
        decay = rng.uniform(15, 60)
        phase = rng.uniform(0, 2 * np.pi)
        out += rng.uniform(0.3, 1.0) / ratio * np.exp(-decay * t) * np.sin(2 * np.pi * f * t + phase)
    return out


def clip(seed: int, index: int, surface: int, seconds: float = 0.5, snr_db: tuple = (5.0, 25.0),
         sr: int = SAMPLE_RATE) -> np.ndarray:
    """Clip ``index`` of a run seeded ``seed``: the same arguments give the same samples."""
    rng = np.random.default_rng([seed, index, 7])
    n = int(seconds * sr)
    tex = TEXTURE[SURFACES[surface]]
    f0 = rng.uniform(500, 1600)                         # ball size, the same range for every surface
    rate = rng.uniform(4, 14)                           # impacts per second
    out = np.zeros(n)
    for start in np.sort(rng.uniform(0, seconds, max(1, rng.poisson(rate * seconds)))):
        at = int(start * sr)
        hit = rng.uniform(0.4, 1.0) * _impact(rng, n - at, f0, sr)
        out[at:] += hit
        if rng.random() < tex["double_hit"]:            # a dent bounces the ball twice
            lag = at + int(rng.uniform(0.004, 0.015) * sr)
            if lag < n:
                out[lag:] += 0.6 * hit[: n - lag]
    centre = tex["band"] * rng.uniform(0.8, 1.25)
    out += tex["level"] * rng.uniform(0.5, 1.5) * _band_noise(rng, n, centre, tex["width"], sr) * out.std()
    signal = out.std() + 1e-12
    snr = rng.uniform(*snr_db)
    out += signal * 10 ** (-snr / 20) * rng.standard_normal(n)
    return (out / (np.abs(out).max() + 1e-12)).astype(np.float32)


def labels_for(seed: int, n: int, classes: int = len(SURFACES)) -> np.ndarray:
    """The surface of each of ``n`` clips of a run: balanced, in a seeded order."""
    rng = np.random.default_rng([seed, 11])
    return rng.permutation(np.arange(n) % classes)


def make_sounds(seed: int, indices, labels: np.ndarray, seconds: float = 0.5, snr_db=(5.0, 25.0)) -> Sounds:
    """The clips ``indices`` of a run (``labels`` indexed the same way)."""
    indices = np.asarray(indices)
    audio = np.stack([clip(seed, int(i), int(labels[i]), seconds, snr_db) for i in indices])
    return Sounds(audio, labels[indices].astype(np.int64))


# -- features -------------------------------------------------------------------------------
def mel_filterbank(bands: int = MELS, frame: int = FRAME, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Triangular filters evenly spaced on the mel scale (HTK's formula), (bands, frame // 2 + 1)."""
    def mel(f):
        return 2595 * np.log10(1 + np.asarray(f) / 700)

    def hz(m):
        return 700 * (10 ** (np.asarray(m) / 2595) - 1)

    edges = hz(np.linspace(mel(0), mel(sr / 2), bands + 2))
    freqs = np.fft.rfftfreq(frame, 1 / sr)
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (freqs - lower) / (centre - lower)
    falling = (upper - freqs) / (upper - centre)
    return np.clip(np.minimum(rising, falling), 0, None)


def log_mel(audio: np.ndarray, bands: int = MELS) -> np.ndarray:
    """Log-mel spectrogram of clips (n, samples) -> (n, bands, frames), Hann frames of 256 with a
    hop of 128 (32 ms and 16 ms at 8 kHz). Each clip's mean log energy is removed, so a client's
    recording level does not matter and no statistics need to be pooled across clients."""
    audio = np.atleast_2d(audio)
    frames = 1 + (audio.shape[1] - FRAME) // HOP
    idx = np.arange(FRAME)[None, :] + HOP * np.arange(frames)[:, None]
    power = np.abs(np.fft.rfft(audio[:, idx] * np.hanning(FRAME), axis=-1)) ** 2
    mel = np.log(power @ mel_filterbank(bands).T + 1e-6)
    mel -= mel.mean(axis=(1, 2), keepdims=True)
    return (mel / 4.0).transpose(0, 2, 1).astype(np.float32)


# -- splits ---------------------------------------------------------------------------------
def dirichlet_split(labels: np.ndarray, clients: int, alpha: float, seed: int,
                    min_size: int = 2) -> list[np.ndarray]:
    """Non-IID split: each class's clips are shared among clients in proportions drawn from
    Dirichlet(α) (small α: each client sees few classes). Redrawn until every client holds at
    least ``min_size`` clips."""
    rng = np.random.default_rng([seed, 13])
    classes = np.unique(labels)
    for _ in range(1000):
        parts = [[] for _ in range(clients)]
        for c in classes:
            members = rng.permutation(np.flatnonzero(labels == c))
            cuts = (np.cumsum(rng.dirichlet(alpha * np.ones(clients)))[:-1] * len(members)).astype(int)
            for k, chunk in enumerate(np.split(members, cuts)):
                parts[k].extend(chunk.tolist())
        if min(len(p) for p in parts) >= min_size:
            return [np.sort(np.asarray(p, dtype=np.int64)) for p in parts]
    raise ValueError(f"cannot give {clients} clients {min_size} clips each from {len(labels)} clips "
                     f"with alpha={alpha}")


@dataclasses.dataclass(frozen=True)
class Design:
    """Which clips exist and who holds them: a function of the run's settings alone."""

    seed: int
    train_per_class: int
    test_per_class: int
    clients: int
    alpha: float
    classes: int = len(SURFACES)

    @property
    def n_train(self) -> int:
        return self.train_per_class * self.classes

    def labels(self) -> np.ndarray:
        return labels_for(self.seed, self.n_train + self.test_per_class * self.classes, self.classes)

    def partitions(self) -> list[np.ndarray]:
        return dirichlet_split(self.labels()[: self.n_train], self.clients, self.alpha, self.seed)

    def client_features(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        sounds = make_sounds(self.seed, self.partitions()[k], self.labels())
        return log_mel(sounds.audio), sounds.labels

    def test_features(self) -> tuple[np.ndarray, np.ndarray]:
        sounds = make_sounds(self.seed, np.arange(self.n_train, len(self.labels())), self.labels())
        return log_mel(sounds.audio), sounds.labels


# -- real recordings ------------------------------------------------------------------------
def load_sound_folder(root: str | pathlib.Path, seconds: float = 0.5,
                      sr: int = SAMPLE_RATE) -> tuple[Sounds, list[str]]:
    """Recordings laid out as ``root/<class>/<clip>.wav`` (mono or stereo, any rate): the layout
    of most sound-event datasets, and of a reader's own recordings. Each clip is resampled to
    ``sr``, mixed to mono and cut or padded to ``seconds``. Returns the sounds and class names."""
    from scipy.io import wavfile
    from scipy.signal import resample_poly

    root = pathlib.Path(root)
    names = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    if not names:
        raise FileNotFoundError(f"{root}: expected one folder of .wav files per class")
    n = int(seconds * sr)
    audio, labels = [], []
    for label, name in enumerate(names):
        for path in sorted((root / name).glob("*.wav")):
            rate, raw = wavfile.read(path)
            samples = raw.astype(np.float64)
            if np.issubdtype(raw.dtype, np.integer):
                samples /= np.iinfo(raw.dtype).max
            if samples.ndim == 2:
                samples = samples.mean(axis=1)
            if rate != sr:
                g = np.gcd(int(rate), sr)
                samples = resample_poly(samples, sr // g, int(rate) // g)
            audio.append(np.pad(samples[:n], (0, max(0, n - len(samples)))).astype(np.float32))
            labels.append(label)
    if not audio:
        raise FileNotFoundError(f"{root}: no .wav files in {', '.join(names)}")
    return Sounds(np.stack(audio), np.asarray(labels, dtype=np.int64), sr), names
