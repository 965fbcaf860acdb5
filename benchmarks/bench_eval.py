"""kNN evaluation time: 50,000 train × 10,000 queries, k = 200, weighted vote, end to end.

Side by side in one process on the same random features (10 classes): ``KNNEvaluator`` with the
faiss and torch backends (fit + search + voting), pytorch-metric-learning's ``AccuracyCalculator``
(its kNN path: precision@1 with k=200 neighbours, faiss underneath), and a naive torch
matmul + top-k + vote. Each is timed as the median of 3 runs after one warm-up.

    python benchmarks/bench_eval.py
    python benchmarks/bench_eval.py --device cuda     # torch backend and naive on the GPU
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import append_results, markdown_table, timeit  # noqa: E402


def naive_knn(train, train_labels, queries, k, tau, classes):
    sims = F.normalize(queries, dim=1) @ F.normalize(train, dim=1).T
    top, index = sims.topk(k, dim=1)
    scores = torch.zeros(queries.shape[0], classes, device=queries.device)
    scores.scatter_add_(1, train_labels[index], torch.exp(top / tau))
    return scores.argmax(1)


def measure(dim: int, args: argparse.Namespace) -> list[list[str]]:
    from contrast.eval import KNNEvaluator

    rows = []
    g = torch.Generator().manual_seed(dim)
    train = torch.randn(args.train, dim, generator=g)
    queries = torch.randn(args.queries, dim, generator=g)
    labels = torch.randint(0, 10, (args.train,), generator=g)
    query_labels = torch.randint(0, 10, (args.queries,), generator=g)
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else None
    results = {}
    try:
        import faiss  # noqa: F401
    except ImportError:
        results["contrast (faiss)"] = None
    else:
        results["contrast (faiss)"] = timeit(
            lambda: KNNEvaluator(k=args.k, backend="faiss").fit(train, labels).score(queries, query_labels), 3
        )
    tr, qu, lb = train.to(device), queries.to(device), labels.to(device)
    results[f"contrast (torch, {device.type})"] = timeit(
        lambda: KNNEvaluator(k=args.k, backend="torch").fit(tr, lb).score(qu, query_labels.to(device)),
        3,
        sync=sync,
    )
    results[f"naive matmul+topk ({device.type})"] = timeit(
        lambda: naive_knn(tr, lb, qu, args.k, 0.07, 10), 3, sync=sync
    )
    pml = "pytorch-metric-learning AccuracyCalculator"
    try:
        from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator
    except ImportError:
        results[pml] = None
    else:
        if results["contrast (faiss)"] is not None:  # its default search: faiss on the CPU
            calc = AccuracyCalculator(include=("precision_at_1",), k=args.k, device=torch.device("cpu"))
            results[pml + " (faiss)"] = timeit(
                lambda: calc.get_accuracy(queries, query_labels, train, labels, ref_includes_query=False), 3
            )
        if device.type == "cuda" or results["contrast (faiss)"] is None:  # its torch search on the device
            from pytorch_metric_learning.distances import CosineSimilarity
            from pytorch_metric_learning.utils.inference import CustomKNN

            calc = AccuracyCalculator(
                include=("precision_at_1",), k=args.k, device=device, knn_func=CustomKNN(CosineSimilarity())
            )
            results[pml + f" (torch, {device.type})"] = timeit(
                lambda: calc.get_accuracy(qu, query_labels.to(device), tr, lb, ref_includes_query=False), 3, sync=sync
            )
    ours = results["contrast (faiss)"] or results[f"contrast (torch, {device.type})"]
    for name, seconds in results.items():
        rows.append(
            [
                str(dim),
                name,
                f"{seconds:.3f}" if seconds else "not installed",
                f"{seconds / ours:.2f}x" if seconds else "-",
            ]
        )
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", type=int, default=50_000)
    parser.add_argument("--queries", type=int, default=10_000)
    parser.add_argument("--dims", type=int, nargs="+", default=[128, 512])
    parser.add_argument("--k", type=int, default=200)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()

    rows = []
    for dim in args.dims:
        rows += measure(dim, args)
    table = markdown_table(["D", "implementation", "seconds", "vs contrast (faiss, else torch)"], rows)
    print(table)
    if not args.no_append:
        append_results(
            f"kNN evaluation, {args.train:,} train × {args.queries:,} queries, k={args.k}",
            args.device,
            table,
            "Median of 3 runs after a warm-up; contrast's times include fitting the index, the search and the "
            "weighted vote; pytorch-metric-learning computes precision@1 from its k-neighbour search.",
        )


if __name__ == "__main__":
    main()
