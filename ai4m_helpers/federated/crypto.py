"""CKKS encryption of model weights with TenSEAL, and what each party can do with it.

The key holder makes a CKKS context and keys. Clients hold the full context (with the secret key:
one key shared by all clients, a simplification); the server gets the *public* context only
(the parameters and the public key: no Galois or relinearisation keys, since adding ciphertexts
and multiplying them by plaintext numbers needs neither). A client
encrypts its flat weight vector (``ckks_vector`` packs N/2 values per ciphertext and splits a
longer vector over several); what travels is the serialised bytes. The server deserialises the
ciphertexts against its public context, multiplies each by its plaintext weight n_k / N and adds
them: it never holds a key that decrypts. Clients decrypt the sum.
"""
from __future__ import annotations

import dataclasses
import time

import numpy as np

# TenSEAL's tutorial setting, and the reference note's: ring degree 8192 (4096 slots per
# ciphertext), a modulus chain of 60-40-40-60 bits (two rescalings), scale 2^40.
RING_DEGREE = 8192
MODULUS_BITS = (60, 40, 40, 60)
SCALE_BITS = 40


@dataclasses.dataclass(frozen=True)
class CKKSSetting:
    ring_degree: int = RING_DEGREE
    modulus_bits: tuple = MODULUS_BITS
    scale_bits: int = SCALE_BITS

    @property
    def slots(self) -> int:
        return self.ring_degree // 2


def make_context(setting: CKKSSetting = CKKSSetting()):
    """A fresh CKKS context holding every key (the key holder's)."""
    import tenseal as ts

    ctx = ts.context(ts.SCHEME_TYPE.CKKS, setting.ring_degree, coeff_mod_bit_sizes=list(setting.modulus_bits))
    ctx.global_scale = 2.0 ** setting.scale_bits
    return ctx


@dataclasses.dataclass
class Keys:
    """The two serialised contexts: the clients' (with the secret key) and the server's (without)."""

    secret: bytes
    public: bytes

    @classmethod
    def generate(cls, setting: CKKSSetting = CKKSSetting()) -> "Keys":
        ctx = make_context(setting)
        return cls(secret=ctx.serialize(save_secret_key=True),
                   public=ctx.serialize(save_secret_key=False, save_galois_keys=False, save_relin_keys=False))


def load_context(blob: bytes):
    import tenseal as ts

    return ts.context_from(blob)


def encrypt(ctx, vector: np.ndarray) -> list[bytes]:
    """One serialised ciphertext per ``slots`` values of the vector. (TenSEAL would split a longer
    vector itself, with a warning on every call; splitting here keeps the pieces visible.)"""
    import tenseal as ts

    vector = np.asarray(vector, dtype=np.float64)
    slots = _slots(ctx)
    return [ts.ckks_vector(ctx, vector[i:i + slots].tolist()).serialize() for i in range(0, len(vector), slots)]


def _slots(ctx) -> int:
    return ctx.seal_context().data.first_context_data().parms().poly_modulus_degree() // 2


def decrypt(ctx, blobs: list[bytes]) -> np.ndarray:
    """Decrypt with a context that holds the secret key (TenSEAL refuses without one)."""
    import tenseal as ts

    if not ctx.has_secret_key():
        raise PermissionError("this context holds no secret key: it cannot decrypt")
    return np.concatenate([ts.ckks_vector_from(ctx, b).decrypt() for b in blobs])


def weighted_sum(public_ctx, clients: list[list[bytes]], weights: list[float],
                 noise: np.ndarray | None = None) -> list[bytes]:
    """Σ_k weight_k · Enc(w_k) (+ plaintext noise), computed on ciphertexts only: a
    ciphertext-by-plaintext product per client and piece (one rescaling) and additions."""
    import tenseal as ts

    if len({len(c) for c in clients}) != 1:
        raise ValueError("every client must send the same number of ciphertexts")
    slots, out = _slots(public_ctx), []
    for piece, blobs in enumerate(zip(*clients)):
        total = None
        for blob, weight in zip(blobs, weights, strict=True):
            term = ts.ckks_vector_from(public_ctx, blob) * float(weight)
            total = term if total is None else total + term
        if noise is not None:
            chunk = np.asarray(noise, dtype=np.float64)[piece * slots:(piece + 1) * slots]
            total = total + chunk[: total.size()].tolist()
        out.append(total.serialize())
    return out


def nbytes(blobs: list[bytes]) -> int:
    return sum(len(b) for b in blobs)


def ciphertext_count(parameters: int, setting: CKKSSetting = CKKSSetting()) -> int:
    return -(-parameters // setting.slots)


# -- costs ----------------------------------------------------------------------------------
def held_bytes(ctx, blobs: list[bytes]) -> int:
    """Memory of ciphertexts once parsed: 2 polynomials × (primes in use) × N coefficients × 8
    bytes each, read from SEAL's own objects. (The process's resident memory cannot show it:
    SEAL allocates from a memory pool that it keeps once grown.)"""
    import tenseal as ts

    total = 0
    for blob in blobs:
        for ct in ts.ckks_vector_from(ctx, blob).ciphertext():
            total += ct.size() * ct.coeff_modulus_size() * ct.poly_modulus_degree() * 8
    return total


def _best_of(runs: int, fn) -> tuple[float, object]:
    """The shortest of ``runs`` timings of ``fn()`` (the usual estimate of an operation's cost:
    other work on the machine only ever adds time), and its last result."""
    best, out = float("inf"), None
    for _ in range(runs):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def measure_costs(parameters: int, clients: int, keys: Keys, seed: int, runs: int = 3) -> dict:
    """One aggregation of ``clients`` random weight vectors of ``parameters`` values, each phase
    timed on its own: encryption (the fastest client: they do the same work), the server's
    weighted sum and one decryption (each the best of ``runs``). Bytes are the serialised
    ciphertexts (what goes over the wire); the server's memory is what it holds while adding:
    every client's received bytes and their parsed ciphertexts; the error is the largest
    difference from the plaintext weighted mean."""
    rng = np.random.default_rng([seed, parameters])
    vectors = rng.normal(0, 0.1, (clients, parameters))
    weights = rng.dirichlet(np.ones(clients))
    client_ctx, server_ctx = load_context(keys.secret), load_context(keys.public)
    times, blobs = zip(*(_best_of(1, lambda v=v: encrypt(client_ctx, v)) for v in vectors))
    received = sum(nbytes(b) for b in blobs)
    aggregate_s, total = _best_of(runs, lambda: weighted_sum(server_ctx, list(blobs), weights.tolist()))
    decrypt_s, mean = _best_of(runs, lambda: decrypt(client_ctx, total)[:parameters])
    return {"parameters": parameters, "ciphertexts": ciphertext_count(parameters),
            "encrypt_s": float(np.min(times)), "aggregate_s": aggregate_s, "decrypt_s": decrypt_s,
            "bytes_per_client": nbytes(blobs[0]), "expansion": nbytes(blobs[0]) / (4 * parameters),
            "memory_bytes": received + clients * held_bytes(server_ctx, blobs[0]),
            "max_error": float(np.abs(mean - weights @ vectors).max())}
