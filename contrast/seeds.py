"""One way to derive the seeds of a run's random streams."""

from __future__ import annotations

import hashlib


def derive_seed(seed: int, *parts: object) -> int:
    """A 63-bit seed for the stream named by ``parts`` (e.g. ("views", step, rank)) of run ``seed``.

    Hashing the parts keeps every stream independent of the others, where sums of multiplied
    terms (seed·p + step·q + rank) collide for some combinations."""
    text = "/".join(str(p) for p in (seed, *parts)).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little") >> 1
