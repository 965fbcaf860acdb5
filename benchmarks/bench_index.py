"""``contrast index`` against autofaiss's ``build_index`` on the same embeddings under the same memory
budget, side by side in one run.

The embeddings: ``--n`` (1,000,000) × ``--dim`` (512) float16, L2-normalised, clustered (``--clusters``
centres on the sphere, each point its centre plus isotropic noise of the same norm, so a point's cosine
to its centre is about 0.7), in the layout ``contrast embed`` writes (``images/NNNNN.npy`` + ``.jsonl``,
shards of 50,000). 1,000 held-out queries from the same distribution are written as the collection's
text embeddings (``contrast index`` tunes on them; autofaiss tunes on its own sample), and 1,000 other
held-out queries (``queries.npy``) are the ones both indexes are scored on.

Each side runs in its own process (build, then a fresh process that loads the index and queries it):

* build: wall time and peak resident memory (``ru_maxrss``) of the building process;
* index: the size of the index file and the resident memory of a process holding it after the queries
  (the pages of the memory-mapped inverted lists it touched included);
* queries: one at a time, as a service answers them, with the setting each side tuned to
  ``--max-query-ms``: median and p99 ms, recall@10 against exact search (FAISS ``knn`` over all
  vectors, shard by shard).

The budget: ``--budget`` (1 GB: half of the raw float32 vectors, so both sides must compress). autofaiss
gets it as ``max_index_memory_usage``; ``--build-memory`` (4 GB) as ``current_memory_available`` (for
1M × 512 in 1 GB it accepts no less than 2.3 GB). Where both sides run, contrast builds a second index
with autofaiss's index file size as its budget, so that recall is compared at no more memory either way.
autofaiss 2.18 pins ``numpy<2`` and calls ``faiss.OPQMatrix`` with keywords that the bindings of
faiss-cpu 1.15 refuse, and writes numpy scalars with ``json.dump``, which fails under numpy 2; install
it beside the toolkit's numpy with ``pip install --no-deps autofaiss embedding-reader fire termcolor
pyarrow`` (this script passes OPQMatrix's arguments by position and lets ``json.dump`` write numpy
scalars as floats; nothing else of autofaiss is changed).

    python benchmarks/bench_index.py --build-memory 2.3GB  # 1M × 512 in 1 GB (about 35 min on 2 cores)
    python benchmarks/bench_index.py --n 100000 --budget 100MB --no-append   # a rehearsal
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import append_results, current_rss_bytes, markdown_table  # noqa: E402

SHARD = 50_000


def clustered(g: np.random.Generator, centres: np.ndarray, n: int) -> np.ndarray:
    """``n`` unit vectors, each a random centre plus noise of the centre's norm, float16."""
    d = centres.shape[1]
    x = centres[g.integers(0, len(centres), n)] + g.normal(size=(n, d)).astype(np.float32) / np.sqrt(d)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float16)


def generate(work: Path, n: int, dim: int, clusters: int, seed: int = 0) -> None:
    """The collection (see the module doc), written once; a finished one is reused."""
    if (work / "done").is_file() and json.loads((work / "done").read_text()) == [n, dim, clusters, seed]:
        return
    shutil.rmtree(work, ignore_errors=True)
    g = np.random.default_rng(seed)
    centres = g.normal(size=(clusters, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    for kind in ("images", "texts"):
        (work / kind).mkdir(parents=True)
    for s, start in enumerate(range(0, n, SHARD)):
        rows = min(SHARD, n - start)
        np.save(work / f"images/{s:05d}.npy", clustered(g, centres, rows))
        lines = "".join(json.dumps({"id": i}) + "\n" for i in range(start, start + rows))
        (work / f"images/{s:05d}.jsonl").write_text(lines)
    np.save(work / "texts/00000.npy", clustered(g, centres, 1000))  # the tuning queries of contrast index
    (work / "texts/00000.jsonl").write_text("".join(json.dumps({"id": i}) + "\n" for i in range(1000)))
    np.save(work / "queries.npy", clustered(g, centres, 1000).astype(np.float32))  # the scored queries
    (work / "embed.json").write_text(json.dumps({"fingerprint": "generated", "dim": dim}))
    (work / "done").write_text(json.dumps([n, dim, clusters, seed]))


def _autofaiss():
    import faiss

    positional = faiss.OPQMatrix
    faiss.OPQMatrix = lambda d=0, M=1, d2=-1: positional(d, M, d2)  # autofaiss passes M= and d2= by keyword
    dump = json.dump  # its figures are numpy scalars, which numpy 2's json cannot write: as floats
    json.dump = lambda obj, fp, **kwargs: dump(obj, fp, default=float, **kwargs)
    from autofaiss import build_index

    return build_index


def build_side(side: str, work: Path, budget: str, build_memory: str, max_ms: float) -> dict:
    """Build one side's index (in this process); its record."""
    start = time.perf_counter()
    if side in ("contrast", "matched"):
        from contrast.search.index import index

        record = index(str(work), max_memory=budget, max_query_ms=max_ms, out=str(work / side))[0]
        setting = {"parameter": record["parameter"], "value": record["value"], "factory": record["factory"]}
        path = work / side / "images.faiss"
    else:
        build_index = _autofaiss()
        (work / "autofaiss").mkdir(exist_ok=True)
        path = work / "autofaiss/knn.index"
        _, infos = build_index(
            embeddings=str(work / "images"),
            index_path=str(path),
            index_infos_path=str(work / "autofaiss/infos.json"),
            file_format="npy",
            metric_type="ip",
            max_index_memory_usage=budget,
            current_memory_available=build_memory,
            max_index_query_time_ms=max_ms,
            min_nearest_neighbors_to_retrieve=10,
            nb_cores=os.cpu_count(),
            verbose=20,  # its stages and their times, on stderr
        )
        if infos is None:  # it logs why (e.g. a build memory below what it needs to train) and returns nothing
            raise SystemExit(f"autofaiss built no index under --build-memory {build_memory} (its log above)")
        setting = {"index_param": infos["index_param"], "factory": infos["index_key"]}
    build_s = time.perf_counter() - start
    (work / f"{side}.setting.json").write_text(json.dumps(setting))
    return {
        "build_s": build_s,
        "build_peak_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "file_bytes": path.stat().st_size,
        **setting,
    }


def query_side(side: str, work: Path, truth: np.ndarray) -> dict:
    """Load one side's index in this fresh process, set its tuned parameter, query one at a time."""
    import faiss

    setting = json.loads((work / f"{side}.setting.json").read_text())
    before = current_rss_bytes()
    if side in ("contrast", "matched"):
        index = faiss.read_index(str(work / side / "images.faiss"))
        if setting["parameter"]:
            faiss.ParameterSpace().set_index_parameter(index, setting["parameter"], setting["value"])
    else:
        index = faiss.read_index(str(work / "autofaiss/knn.index"))
        faiss.ParameterSpace().set_index_parameters(index, setting["index_param"])
    queries = np.load(work / "queries.npy")
    times, found = [], []
    for q in queries:
        start = time.perf_counter()
        found.append(index.search(q[None], 10)[1][0])
        times.append(1000 * (time.perf_counter() - start))
    recall = float(np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth)]))
    return {
        "recall@10": recall,
        "median_ms": float(np.median(times)),
        "p99_ms": float(np.percentile(times, 99)),
        "serve_bytes": current_rss_bytes() - before,
    }


def run_side(side: str, phase: str, args, budget: str) -> dict:
    command = [sys.executable, __file__, "--side", side, "--phase", phase, "--work", str(args.work)]
    command += ["--budget", budget, "--build-memory", args.build_memory, "--max-query-ms", str(args.max_query_ms)]
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True)  # stderr (progress) passes through
    if done.returncode:
        raise SystemExit(f"{side} {phase} failed (its stderr above):\n{done.stdout[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--clusters", type=int, default=2000)
    parser.add_argument("--budget", default="1GB")
    parser.add_argument("--build-memory", default="4GB")
    parser.add_argument("--max-query-ms", type=float, default=10.0)
    parser.add_argument("--work", type=Path, help="where the embeddings go (default: a temporary folder)")
    parser.add_argument("--side", choices=["contrast", "autofaiss", "matched"], help=argparse.SUPPRESS)
    parser.add_argument("--phase", choices=["build", "query"], help=argparse.SUPPRESS)
    parser.add_argument("--sides", default="contrast,autofaiss", help="which sides to run (a comma list)")
    parser.add_argument(
        "--no-match", action="store_true", help="skip contrast's second build, within autofaiss's index size"
    )
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()
    if args.side:  # one side's phase, in its own process
        if args.phase == "build":
            result = build_side(args.side, args.work, args.budget, args.build_memory, args.max_query_ms)
        else:
            result = query_side(args.side, args.work, np.load(args.work / "truth.npy"))
        print(json.dumps(result))
        return

    from contrast.search.index import exact_search

    temporary = None if args.work else tempfile.TemporaryDirectory(prefix="bench_index_")
    args.work = args.work or Path(temporary.name)
    start = time.perf_counter()
    generate(args.work, args.n, args.dim, args.clusters)
    print(f"embeddings: {args.n:,} × {args.dim} in {time.perf_counter() - start:.0f} s", flush=True)
    np.save(args.work / "truth.npy", exact_search(args.work / "images", np.load(args.work / "queries.npy"), 10))
    results = {}
    sides = {side: args.budget for side in args.sides.split(",")}
    if not args.no_match and {"contrast", "autofaiss"} <= set(sides):
        sides["matched"] = None  # contrast again, its budget autofaiss's index file: at ≤ its memory
    for side, budget in sides.items():
        budget = budget or str(results["autofaiss"]["file_bytes"])
        shutil.rmtree(args.work / side, ignore_errors=True)
        results[side] = {**run_side(side, "build", args, budget), **run_side(side, "query", args, budget)}
        print(side, json.dumps(results[side]), flush=True)
    theirs_mib = results.get("autofaiss", {}).get("file_bytes", 0) / 2**20
    labels = {"matched": f"contrast within autofaiss's index size ({theirs_mib:,.0f} MiB)"}
    mb = 1 / 2**20
    rows = [
        [
            labels.get(side, side),
            f"`{r['factory']}`",
            f"{r['build_s']:.0f}",
            f"{r['build_peak_bytes'] * mb:,.0f}",
            f"{r['file_bytes'] * mb:,.0f}",
            f"{r['serve_bytes'] * mb:,.0f}",
            f"{r['recall@10']:.3f}",
            f"{r['median_ms']:.2f}",
            f"{r['p99_ms']:.2f}",
        ]
        for side, r in results.items()
    ]
    header = [
        "",
        "index",
        "build s",
        "build peak MiB",
        "index file MiB",
        "serving MiB",
        "recall@10",
        "median ms",
        "p99 ms",
    ]
    table = markdown_table(header, rows)
    print(table)
    notes = (
        f"{args.n:,} × {args.dim} float16 embeddings around {args.clusters:,} centres, budget {args.budget}, "
        f"query target {args.max_query_ms:g} ms, 1,000 held-out queries one at a time, recall@10 against exact "
        "search; each side's build and queries in processes of their own."
    )
    if "autofaiss" in results:
        theirs = results["autofaiss"]
        for side in [s for s in results if s != "autofaiss"]:
            ours = results[side]
            notes += (
                f" {labels.get(side, side)}/autofaiss: recall {ours['recall@10'] / theirs['recall@10']:.3f}×, "
                f"build time {ours['build_s'] / theirs['build_s']:.2f}×, index file "
                f"{ours['file_bytes'] / theirs['file_bytes']:.2f}×, serving "
                f"{ours['serve_bytes'] / theirs['serve_bytes']:.2f}×, build peak "
                f"{ours['build_peak_bytes'] / theirs['build_peak_bytes']:.2f}×; its setting "
                f"{ours['parameter']}={ours['value']}."
            )
        notes += f" autofaiss's setting: {theirs['index_param']}; its build memory {args.build_memory}."
    print(notes)
    if not args.no_append:
        append_results("FAISS index under a memory budget: contrast index vs autofaiss", "cpu", table, notes)
    if temporary:
        temporary.cleanup()


if __name__ == "__main__":
    main()
