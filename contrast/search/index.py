"""``contrast index DIR``: a FAISS index over the embeddings ``contrast embed`` wrote, chosen for their
count and width under a memory budget, tuned to a query-time target, its recall measured.

The choice starts from autofaiss's rules (``autofaiss/external/optimize.py``), on inner product
(the embeddings are L2-normalised, so it is the cosine):

* fewer than 1,000 vectors: exact search (``Flat``);
* fewer than 10,000: ``HNSW32`` over the vectors (where it fits);
* fewer than 1,000,000 whose float32 vectors fit the budget: ``IVF<nlist>,Flat`` (nlist ≈ 4·√n, a
  power of two);
* where a byte a dimension fits: ``IVF<nlist>,SQ8``, else 6 bits a dimension, ``IVF<nlist>,SQ6`` — a
  departure from autofaiss, which goes to product quantisation as soon as float32 does not fit (for
  1M × 512 in 1 GB its first choice is ``OPQ256_768,IVF16384_HNSW32,PQ256x8``); a scalar code keeps
  the cosine of normalised embeddings almost exactly, needs no OPQ rotation to train, and is faster to
  train and to add;
* where a byte for two dimensions fits: ``IVF<nlist>,PQ<d/2>x8``, product codes of two dimensions a
  byte on the IVF residuals (autofaiss's code size, without its rotation: at two dimensions a
  sub-quantiser a rotation buys little, and it is the slowest part of autofaiss's training);
* otherwise ``OPQ<m>_<d>,IVF<nlist>_HNSW32,PQ<m>x8``, with the most bytes a vector (m) the budget allows.

It is trained on a sample (``39 · nlist`` vectors, FAISS's advice, at most all, read from the
memory-mapped shards), filled shard by shard, then its search parameter (``nprobe``, ``efSearch``) is
set to the most accurate value whose median query time on held-out queries (the text embeddings when
there are some, else a sample of the images) is within ``max_query_ms``; recall@10 against exact search
on the same queries is measured and recorded. Written beside the embeddings: ``DIR/index/<kind>.faiss``
(FAISS's own format, no pickle) and ``<kind>.json`` (the settings, the figures, the model's
fingerprint).

A collection past one machine is indexed in parts: ``--train_only`` writes the trained, empty IVF
index; each machine adds its group of shards (``--part K/N``: the shards s with s % N == K, under
their ids in the collection); ``--merge N`` merges the parts' inverted lists on disk (FAISS's
``merge_ondisk``) into one index whose lists stay in ``<kind>.ivfdata``, memory-mapped.
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


def shape_of(folder: Path) -> tuple[int, int]:
    """(count, width) of a folder's embeddings, from the shards' headers."""
    shapes = [np.load(array, mmap_mode="r").shape for array, _ in embedding_shards(folder)]
    return sum(rows for rows, _ in shapes), shapes[0][1]


def sample(folder: Path, size: int, seed: int) -> np.ndarray:
    """``size`` embeddings of a folder drawn without replacement (all where it holds fewer), float32;
    only the drawn rows are read, one shard's mapping open at a time (a mapped page a process touched
    counts in its resident memory), so a collection larger than memory is sampled in about the memory
    of the sample."""
    shards = embedding_shards(folder)
    counts = np.array([np.load(array, mmap_mode="r").shape[0] for array, _ in shards])
    ends = np.cumsum(counts)
    rows = np.sort(np.random.default_rng(seed).choice(ends[-1], size=min(size, ends[-1]), replace=False))
    shard = np.searchsorted(ends, rows, side="right")
    drawn = np.empty((len(rows), np.load(shards[0][0], mmap_mode="r").shape[1]), dtype=np.float32)
    for s in np.unique(shard):
        mapped = np.load(shards[s][0], mmap_mode="r")
        drawn[shard == s] = mapped[rows[shard == s] - (ends[s] - counts[s])]
        del mapped  # unmapped: its pages leave this process's resident memory
    return drawn


def exact_search(folder: Path, queries: np.ndarray, k: int) -> np.ndarray:
    """Ids (n_queries, k) of the exact top-k by inner product over a folder's embeddings, shard by shard
    (one shard in memory at a time); the ground truth of recall@k."""
    import faiss

    best_scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
    best_ids = np.full((len(queries), k), -1, dtype=np.int64)
    offset = 0
    for array, _ in embedding_shards(folder):
        vectors = np.load(array).astype(np.float32)
        scores, ids = faiss.knn(queries, vectors, min(k, len(vectors)), metric=faiss.METRIC_INNER_PRODUCT)
        scores = np.concatenate([best_scores, scores], axis=1)
        ids = np.concatenate([best_ids, ids + offset], axis=1)
        top = np.argsort(-scores, axis=1, kind="stable")[:, :k]  # ties: the lower id first, as Flat
        best_scores, best_ids = np.take_along_axis(scores, top, 1), np.take_along_axis(ids, top, 1)
        offset += len(vectors)
    return best_ids


def _nlist(n: int) -> int:
    """IVF lists for n vectors: about 4·√n, a power of two, at least 16."""
    return 2 ** max(4, round(math.log2(max(16, 4 * math.sqrt(n)))))


def choose(n: int, d: int, budget: int) -> tuple[str, str | None]:
    """(FAISS factory string, its search parameter) for n vectors of width d within ``budget`` bytes."""
    flat = 4 * n * d
    nlist = _nlist(n)
    if n < 1000 and flat <= budget:
        return "Flat", None
    if n < 10_000 and 4 * n * (d + 64) <= budget:
        return "HNSW32", "efSearch"
    if n < 1_000_000 and flat * 1.1 + 4 * nlist * d <= budget:
        return f"IVF{nlist},Flat", "nprobe"
    for bits in (8, 6):  # a byte (or 6 bits) a dimension, ids 8 bytes, 10% for the lists
        if n * (math.ceil(d * bits / 8) + 8) * 1.1 + 4 * nlist * d <= budget:
            return f"IVF{nlist},SQ{bits}", "nprobe"
    if d % 2 == 0 and n * (d // 2 + 8) + 4 * nlist * d * 2 <= budget:  # a byte for two dimensions
        return f"IVF{nlist},PQ{d // 2}x8", "nprobe"
    for m in (128, 64, 32, 16, 8):  # bytes a vector, the most that fit (ids: 8 bytes a vector more)
        if m < d // 2 and d % m == 0 and n * (m + 8) + 4 * nlist * d * 2 <= budget:
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


def _trained(folder: Path, factory: str, seed: int):
    """The index of ``factory`` trained on a sample of ``folder``'s embeddings (39 · nlist of them)."""
    import faiss

    index = faiss.index_factory(shape_of(folder)[1], factory, faiss.METRIC_INNER_PRODUCT)
    if not index.is_trained:
        index.train(sample(folder, 39 * faiss.extract_index_ivf(index).nlist, seed))
    return index


def _write(index, path: Path) -> None:
    import faiss

    partial = path.with_name(path.name + f".{os.getpid()}.partial")
    faiss.write_index(index, str(partial))
    os.replace(partial, path)


def held_out(folder: Path, kind: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(queries, their exact top 10): 1,000 of the other kind's embeddings (the texts of an image index)
    where there are some, else of its own; taken before the index is built, so that the exact search's
    shard and the index are never in memory together."""
    other = folder / ("texts" if kind == "images" else "images")
    queries = sample(other if other.is_dir() and any(other.glob("*.npy")) else folder / kind, 1000, seed + 1)
    return queries, exact_search(folder / kind, queries, 10)


def _finish(index, folder: Path, kind: str, factory: str, parameter, settings: dict, out: Path, held) -> dict:
    """Tune ``index`` on the ``held`` out queries against exact search, write it and its record."""
    n, d = shape_of(folder / kind)
    queries, truth = held
    tuned = _tune(index, parameter, queries, truth, settings["max_query_ms"])
    out.mkdir(parents=True, exist_ok=True)
    _write(index, out / f"{kind}.faiss")
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
        "file_bytes": (out / f"{kind}.faiss").stat().st_size,
        **settings,
    }
    (out / f"{kind}.json.partial").write_text(json.dumps(record, indent=2))
    os.replace(out / f"{kind}.json.partial", out / f"{kind}.json")
    return record


def build(folder: Path, kind: str, max_memory: int, max_query_ms: float, fingerprint: str, out: Path, seed: int = 0):
    """The index of ``folder/kind`` (see the module doc); returns its record."""
    start = time.perf_counter()
    factory, parameter = choose(*shape_of(folder / kind), max_memory)
    held = held_out(folder, kind, seed)
    index = _trained(folder / kind, factory, seed)
    for array, _ in embedding_shards(folder / kind):  # shard by shard, in blocks of 10,000
        mapped = np.load(array, mmap_mode="r")
        for block in range(0, len(mapped), 10_000):
            index.add(np.asarray(mapped[block : block + 10_000], dtype=np.float32))
        del mapped
    settings = {"max_memory": max_memory, "max_query_ms": max_query_ms, "fingerprint": fingerprint}
    record = _finish(index, folder, kind, factory, parameter, settings, out, held)
    record["build_s"] = time.perf_counter() - start
    (out / f"{kind}.json").write_text(json.dumps(record, indent=2))
    return record


# ---------------------------------------------------------------------- collections past one machine
def train_empty(folder: Path, kind: str, max_memory: int, out: Path, seed: int = 0) -> Path:
    """Step 1 of an index built in parts: the trained, empty IVF index (``<kind>.trained.faiss``) that
    every part fills; IVF whatever the count, so that the parts' inverted lists can be merged."""
    n, d = shape_of(folder / kind)
    factory, _ = choose(n, d, max_memory)
    if "IVF" not in factory:  # Flat or HNSW for a small collection: its IVF counterpart, whose lists merge
        factory = f"IVF{_nlist(n)},Flat"
    out.mkdir(parents=True, exist_ok=True)
    _write(_trained(folder / kind, factory, seed), out / f"{kind}.trained.faiss")
    (out / f"{kind}.trained.json").write_text(json.dumps({"factory": factory, "max_memory": max_memory}))
    return out / f"{kind}.trained.faiss"


def build_part(folder: Path, kind: str, part: int, parts: int, out: Path) -> Path:
    """Step 2, on any machine: the shards ``s`` with ``s % parts == part`` added to the trained index
    under their ids in the collection (``<kind>.part<part>.faiss``)."""
    import faiss

    index = faiss.read_index(str(out / f"{kind}.trained.faiss"))
    offset = 0
    for s, (array, _) in enumerate(embedding_shards(folder / kind)):
        rows = np.load(array, mmap_mode="r").shape[0]
        if s % parts == part:
            index.add_with_ids(np.load(array).astype(np.float32), np.arange(offset, offset + rows, dtype=np.int64))
        offset += rows
    _write(index, out / f"{kind}.part{part}.faiss")
    return out / f"{kind}.part{part}.faiss"


def merge_parts(folder: Path, kind: str, parts: int, max_query_ms: float, fingerprint: str, out: Path) -> dict:
    """Step 3: the parts' inverted lists merged on disk (FAISS's ``merge_ondisk``) into
    ``<kind>.ivfdata``, read through ``<kind>.faiss``; tuned and recorded as a one-machine index."""
    import faiss
    from faiss.contrib.ondisk import merge_ondisk

    files = [out / f"{kind}.part{p}.faiss" for p in range(parts)]
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise FileNotFoundError(f"{out}: parts {missing} are not built yet (contrast index --part K/{parts})")
    held = held_out(folder, kind, 0)
    index = faiss.read_index(str(out / f"{kind}.trained.faiss"))
    merge_ondisk(index, [str(f) for f in files], str(out / f"{kind}.ivfdata"))
    factory = json.loads((out / f"{kind}.trained.json").read_text())["factory"]
    settings = {"max_query_ms": max_query_ms, "fingerprint": fingerprint, "parts": parts, "ivfdata": f"{kind}.ivfdata"}
    return _finish(index, folder, kind, factory, "nprobe", settings, out, held)


def index(
    folder: str,
    max_memory: str = "4GB",
    max_query_ms: float = 10.0,
    out: str | None = None,
    train_only: bool = False,
    part: str | None = None,
    merge: int | None = None,
) -> list[dict]:
    """``contrast index DIR``: an index of the images (and one of the texts) ``contrast embed`` wrote;
    in parts: ``train_only`` (step 1), ``part="K/N"`` (step 2, the K-th of N shard groups), ``merge=N``
    (step 3; see :func:`train_empty`, :func:`build_part`, :func:`merge_parts`)."""
    base = Path(folder)
    manifest = base / "embed.json"
    if not manifest.is_file():
        raise FileNotFoundError(f"{base}: no embed.json (run contrast embed --out {base} first)")
    fingerprint = json.loads(manifest.read_text())["fingerprint"]
    budget = parse_bytes(max_memory)
    kinds = [kind for kind in ("images", "texts") if (base / kind).is_dir()]
    where = Path(out) if out else base / "index"
    if train_only:
        return [{"kind": kind, "trained": str(train_empty(base, kind, budget, where))} for kind in kinds]
    if part is not None:
        match = re.fullmatch(r"(\d+)/(\d+)", part)
        if not match or not int(match.group(1)) < int(match.group(2)):
            raise ValueError(f"--part: K/N with 0 <= K < N, got {part!r}")
        k, n = int(match.group(1)), int(match.group(2))
        return [{"kind": kind, "part": str(build_part(base, kind, k, n, where))} for kind in kinds]
    if merge is not None:
        return [merge_parts(base, kind, merge, max_query_ms, fingerprint, where) for kind in kinds]
    return [build(base, kind, budget, max_query_ms, fingerprint, where) for kind in kinds]
