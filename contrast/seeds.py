"""One way to derive the seeds of a run's random streams."""

from __future__ import annotations

import hashlib

import numpy as np


def derive_seed(seed: int, *parts: object) -> int:
    """A 63-bit seed for the stream named by ``parts`` (e.g. ("views", step, rank)) of run ``seed``.

    Hashing the parts keeps every stream independent of the others, where sums of multiplied
    terms (seed·p + step·q + rank) collide for some combinations."""
    text = "/".join(str(p) for p in (seed, *parts)).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little") >> 1


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)  # 2^64 / φ: SplitMix64's increment


def _mix64(z: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser (Steele, Lea & Flood 2014): a bijection of uint64 whose outputs pass
    BigCrush for consecutive inputs; uint64 arithmetic wraps modulo 2^64."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def counter_uniforms(key: int, counters, draws: int) -> np.ndarray:
    """(n, draws) float64 uniforms in [0, 1): row j is the stream of ``counters[j]`` (e.g. a
    sample's ``epoch·N + i``) under the 64-bit ``key`` (a :func:`derive_seed`), computed for all
    rows at once. Counter-based, as Philox and Threefry (Salmon et al. 2011): number d of a stream
    is a hash of (key, counter, d), so a sample's numbers do not depend on the batch it lands in,
    on the order of the draws or on anything drawn before; one vectorised call for a whole batch.

    The hash: SplitMix64 — the stream's state ``mix(key ⊕ mix(counter·φ + φ))``, then number d is
    ``mix(state + (d + 1)·φ)``, its top 53 bits scaled to [0, 1)."""
    with np.errstate(over="ignore"):
        counters = np.asarray(counters, dtype=np.uint64).reshape(-1, 1)  # (n, 1)
        state = _mix64(np.uint64(key) ^ _mix64(counters * _GOLDEN + _GOLDEN))  # (n, 1): one stream per counter
        steps = (np.arange(1, draws + 1, dtype=np.uint64) * _GOLDEN)[None, :]  # (1, draws)
        bits = _mix64(state + steps)  # (n, draws)
    return (bits >> np.uint64(11)).astype(np.float64) * (1.0 / 2**53)
