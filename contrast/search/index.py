"""``contrast index DIR``: a FAISS index over the embeddings ``contrast embed`` wrote, chosen for their
count and width under a memory budget, tuned to a query-time target, its recall measured.

The choice starts from autofaiss's rules (``autofaiss/external/optimize.py``), on inner product
(the embeddings are L2-normalised, so it is the cosine):

* fewer than 1,000 vectors: exact search (``Flat``);
* fewer than 10,000: ``HNSW32`` over the vectors (where it fits);
* fewer than 1,000,000 whose float32 vectors fit the budget: ``IVF<nlist>,Flat`` (nlist ≈ 4·√n, a
  power of two);
* otherwise ``OPQ<m>_<d'>,IVF<nlist>_HNSW32,PQ<m>x8``, with the most bytes a vector (m) the budget allows.

It is trained on a sample (``39 · nlist`` vectors, FAISS's advice, at most all), filled shard by
shard, then its search parameter (``nprobe``, ``efSearch``) is set to the most accurate value whose
median query time on held-out queries (the text embeddings when there are some, else a sample of
the images) is within ``max_query_ms``; recall@10 against exact search on the same queries is
measured and recorded. Written beside the embeddings: ``DIR/index/<kind>.faiss`` (FAISS's own
format, no pickle) and ``<kind>.json`` (the settings, the figures, the model's fingerprint).
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from pathlib import Path

import numpy as np

UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30}


def parse_bytes(text: str) -> int:
    """``"4GB"`` -> 4·10⁹; ``"512MiB"``, ``"1e9"`` too."""
    match = re.fullmatch(r"\s*([0-9.eE+]+)\s*([A-Za-z]*)\s*", str(text))
    if not match or match.group(2).upper() not in UNITS:
        raise ValueError(f"--max_memory: a size such as 4GB or 512MB, got {text!r}")
    return int(float(match.group(1)) * UNITS[match.group(2).upper()])


def embedding_shards(folder: Path) -> list[tuple[Path, Path]]:
    """(``.npy``, ``.jsonl``) of each shard of ``folder``, checked: one width, a metadata file each."""
    arrays = sorted(folder.glob("[0-9]*.npy"))
    if not arrays:
        raise FileNotFoundError(f"{folder}: no embedding shards (run contrast embed first)")
    widths = {}
    for array in arrays:
        meta = array.with_suffix(".jsonl")
        if not meta.is_file():
            raise ValueError(f"{folder}: shard {array.name} has no metadata file {meta.name} (an unfinished embed?)")
        shape = np.load(array, mmap_mode="r").shape
        widths.setdefault(shape[1], array.name)
    if len(widths) > 1:
        (a, first), (b, second) = list(widths.items())[:2]
        raise ValueError(f"{folder}: shards of different widths ({first}: {a}, {second}: {b}); embed with one model")
    return [(array, array.with_suffix(".jsonl")) for array in arrays]


def load_vectors(folder: Path) -> np.ndarray:
    """All the embeddings of a folder, float32 (n, d)."""
    return np.concatenate([np.load(array).astype(np.float32) for array, _ in embedding_shards(folder)])


def choose(n: int, d: int, budget: int) -> tuple[str, str | None]:
    """(FAISS factory string, its search parameter) for n vectors of width d within ``budget`` bytes."""
    flat = 4 * n * d
    nlist = 2 ** max(4, round(math.log2(max(16, 4 * math.sqrt(n)))))
    if n < 1000 and flat <= budget:
        return "Flat", None
    if n < 10_000 and 4 * n * (d + 64) <= budget:
        return "HNSW32", "efSearch"
    if n < 1_000_000 and flat * 1.1 + 4 * nlist * d <= budget:
        return f"IVF{nlist},Flat", "nprobe"
    for m in (128, 64, 32, 16, 8):  # bytes a vector, the most that fit (ids: 8 bytes a vector more)
        if m <= d and d % m == 0 and n * (m + 8) + 4 * nlist * d * 2 <= budget:
            return f"OPQ{m}_{d},IVF{nlist}_HNSW32,PQ{m}x8", "nprobe"
    raise ValueError(
        f"--max_memory: {budget:,} bytes hold no index of {n:,} vectors of width {d} "
        f"(the smallest, 8-byte codes, needs {n * 16:,})"
    )


def _tune(index, parameter, queries, truth, max_ms) -> dict:
    """The setting of ``parameter`` with the best recall@10 whose median query time is within ``max_ms``."""
    import faiss

    space = faiss.ParameterSpace()
    values = [None] if parameter is None else [2**i for i in range(0, 12)]
    best = None
    for value in values:
        if parameter == "nprobe" and value > faiss.extract_index_ivf(index).nlist:
            break
        if value is not None:
            space.set_index_parameter(index, parameter, value)
        times = []
        found = []
        for q in queries:  # one query at a time, as a service answers them
            start = time.perf_counter()
            found.append(index.search(q[None], 10)[1][0])
            times.append(1000 * (time.perf_counter() - start))
        recall = float(np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth)]))
        result = {
            "value": value,
            "recall@10": recall,
            "median_ms": float(np.median(times)),
            "p99_ms": float(np.percentile(times, 99)),
        }
        if best is None or (result["median_ms"] <= max_ms and result["recall@10"] > best["recall@10"]):
            best = result
        if result["median_ms"] > max_ms or recall >= 0.999:
            break
    if parameter is not None:
        space.set_index_parameter(index, parameter, best["value"])
    return best


def build(folder: Path, kind: str, max_memory: int, max_query_ms: float, fingerprint: str, out: Path, seed: int = 0):
    """The index of ``folder/kind`` (see the module doc); returns its record."""
    import faiss

    start = time.perf_counter()
    shards = embedding_shards(folder / kind)
    vectors = load_vectors(folder / kind)
    n, d = vectors.shape
    factory, parameter = choose(n, d, max_memory)
    index = faiss.index_factory(d, factory, faiss.METRIC_INNER_PRODUCT)
    rng = np.random.default_rng(seed)
    if not index.is_trained:
        nlist = faiss.extract_index_ivf(index).nlist
        sample = vectors[rng.choice(n, size=min(n, 39 * nlist), replace=False)]
        index.train(sample)
    for array, _ in shards:  # shard by shard
        index.add(np.load(array).astype(np.float32))
    other = folder / ("texts" if kind == "images" else "images")
    held_out = load_vectors(other) if other.is_dir() and any(other.glob("*.npy")) else vectors
    queries = held_out[rng.choice(len(held_out), size=min(len(held_out), 1000), replace=False)]
    exact = faiss.IndexFlatIP(d)
    exact.add(vectors)
    truth = exact.search(queries, 10)[1]
    tuned = _tune(index, parameter, queries, truth, max_query_ms)
    out.mkdir(parents=True, exist_ok=True)
    partial = out / f"{kind}.faiss.{os.getpid()}.partial"
    faiss.write_index(index, str(partial))
    os.replace(partial, out / f"{kind}.faiss")
    record = {
        "kind": kind,
        "factory": factory,
        "metric": "inner product",
        "count": n,
        "dim": d,
        "parameter": parameter,
        "value": tuned["value"],
        "recall@10": tuned["recall@10"],
        "median_ms": tuned["median_ms"],
        "p99_ms": tuned["p99_ms"],
        "queries": len(queries),
        "max_memory": max_memory,
        "max_query_ms": max_query_ms,
        "file_bytes": (out / f"{kind}.faiss").stat().st_size,
        "build_s": time.perf_counter() - start,
        "fingerprint": fingerprint,
    }
    (out / f"{kind}.json.partial").write_text(json.dumps(record, indent=2))
    os.replace(out / f"{kind}.json.partial", out / f"{kind}.json")
    return record


def index(folder: str, max_memory: str = "4GB", max_query_ms: float = 10.0, out: str | None = None) -> list[dict]:
    """``contrast index DIR``: an index of the images (and one of the texts) ``contrast embed`` wrote."""
    base = Path(folder)
    manifest = base / "embed.json"
    if not manifest.is_file():
        raise FileNotFoundError(f"{base}: no embed.json (run contrast embed --out {base} first)")
    fingerprint = json.loads(manifest.read_text())["fingerprint"]
    budget = parse_bytes(max_memory)
    kinds = [kind for kind in ("images", "texts") if (base / kind).is_dir()]
    return [
        build(base, kind, budget, max_query_ms, fingerprint, Path(out) if out else base / "index") for kind in kinds
    ]
