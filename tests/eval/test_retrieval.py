from __future__ import annotations

import pytest
import torch

from contrast.eval.retrieval import cross_view_recall, map_at_r, recall_at_k
from tests.conftest import require

# Four points on a line in 2-D (cosine similarity orders them by angle), labels chosen by hand.
ANGLES = torch.tensor([0.0, 0.1, 0.2, 1.5, 1.6])
POINTS = torch.stack([torch.cos(ANGLES), torch.sin(ANGLES)], dim=1)
LABELS = torch.tensor([0, 1, 0, 1, 1])


def test_recall_at_k_hand_computed():
    # Leave-one-out neighbours by angle: 0 -> [1, 2, 3, 4]; 1 -> [0|2 tie, ...]; 2 -> [1, 0, 3, 4];
    # 3 -> [4, 2, 1, 0]; 4 -> [3, 2, 1, 0].
    r = recall_at_k(POINTS, LABELS, ks=(1, 2))
    # @1: q0 nn=1 (label 1 ≠ 0) miss; q1 nn=0 or 2 (label 0) miss; q2 nn=1 miss; q3 nn=4 hit; q4 nn=3 hit.
    assert r[1] == pytest.approx(40.0)
    # @2: q0 {1, 2} hit; q1 {0, 2} miss; q2 {1, 0} hit; q3 hit; q4 hit.
    assert r[2] == pytest.approx(80.0)


def test_map_at_r_hand_computed():
    # q0 (label 0): R=1, top-1 = [1] -> AP 0.   q2: R=1, top-1 = [1] -> 0.
    # q1 (label 1): R=2 (3, 4), top-2 = [0, 2] (both label 0) -> 0.
    # q3: R=2 (1, 4), top-2 = [4, 2] -> (1/2)(1/1) = 0.5.   q4: R=2 (1, 3), top-2 = [3, 2] -> 0.5.
    assert map_at_r(POINTS, LABELS) == pytest.approx(100.0 * (0 + 0 + 0 + 0.5 + 0.5) / 5)


def test_against_pytorch_metric_learning():
    accuracy_calculator = require("pytorch_metric_learning.utils.accuracy_calculator")
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(6, 16, generator=g)
    labels = torch.randint(0, 6, (400,), generator=g)
    # Unit vectors: pml ranks by L2 distance, which orders unit vectors as cosine similarity does.
    x = torch.nn.functional.normalize(centres[labels] + 0.8 * torch.randn(400, 16, generator=g), dim=1)
    calc = accuracy_calculator.AccuracyCalculator(
        include=("precision_at_1", "mean_average_precision_at_r"), k="max_bin_count", device=torch.device("cpu")
    )
    theirs = calc.get_accuracy(x, labels, x, labels, ref_includes_query=True)
    assert recall_at_k(x, labels, ks=(1,))[1] == pytest.approx(100 * theirs["precision_at_1"], abs=1e-4)
    assert map_at_r(x, labels) == pytest.approx(100 * theirs["mean_average_precision_at_r"], abs=1e-4)


def test_separate_database():
    queries = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    database = torch.tensor([[0.99, 0.01], [0.1, 0.9], [1.0, 0.05]])  # q0's nearest is db0 (label 1)
    r = recall_at_k(queries, torch.tensor([0, 1]), database, torch.tensor([1, 1, 0]), ks=(1, 2))
    assert r == {1: 50.0, 2: 100.0}


def test_cross_view_recall():
    q = torch.eye(4)
    k = torch.tensor([[1.0, 0, 0, 0], [0, 0.5, 1.0, 0], [0, 1.0, 0.1, 0], [0, 0, 0, 1.0]])
    r = cross_view_recall(q, k, ks=(1, 2))
    # cos(q1, k2) = 0.995 > cos(q1, k1) = 0.447 > 0; cos(q2, k1) = 0.894 > cos(q2, k2) = 0.0995 > 0:
    # q→k: q0 hit, q1 and q2 find their key second, q3 hit.
    assert r["q2k@1"] == 50.0 and r["q2k@2"] == 100.0


# ---------------------------------------------------------------------- chunked ranking vs brute force (float64)
from contrast.eval import retrieval  # noqa: E402
from contrast.eval.retrieval import (  # noqa: E402
    average_precision,
    cross_modal_retrieval,
    first_relevant_rank,
    rank,
    recall_from_ranks,
)


def _tied(n: int, d: int, seed: int) -> torch.Tensor:
    """Float64 embeddings on a coarse grid: many exactly equal cosine similarities (ties)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(-1, 2, (n, d), generator=g).double()
    x[x.abs().sum(1) == 0, 0] = 1.0
    return x


def _order(query: torch.Tensor, gallery: torch.Tensor, skip: int | None = None) -> list[int]:
    """Gallery indices by cosine similarity descending, ties by index: the explicit float64 definition."""
    q = query / query.norm()
    scores = [(float(q @ (g / g.norm())), j) for j, g in enumerate(gallery) if j != skip]
    return [j for _, j in sorted(scores, key=lambda s: (-round(s[0], 12), s[1]))]


@pytest.mark.parametrize("chunk_size", [1, 7, None])
@pytest.mark.parametrize("k", [3, 6, 31])  # 3, 6: ties cut by the k-th place (the repair), 31: the whole gallery
def test_rank_is_the_brute_force_order_with_ties_by_index(chunk_size, k):
    queries, gallery = _tied(23, 4, 0), _tied(31, 4, 1)
    scores, indices = rank(queries, gallery, k, chunk_size=chunk_size)
    for i in range(23):
        assert indices[i].tolist() == _order(queries[i], gallery)[:k]
    assert bool((scores[:, :-1] >= scores[:, 1:]).all())
    _, own = rank(queries, queries, 22, chunk_size=chunk_size, exclude_self=True)
    for i in range(23):
        assert own[i].tolist() == _order(queries[i], queries, skip=i)


def test_rank_with_faiss_matches_torch_without_ties():
    g = torch.Generator().manual_seed(2)
    queries, gallery = torch.randn(40, 16, generator=g), torch.randn(300, 16, generator=g)
    torch_scores, torch_indices = rank(queries, gallery, 10)
    faiss_scores, faiss_indices = rank(queries, gallery, 10, backend="faiss")
    assert torch.equal(torch_indices, faiss_indices)
    assert torch.allclose(torch_scores, faiss_scores, atol=1e-5)
    _, own = rank(queries, queries, 5, exclude_self=True, backend="faiss")
    assert torch.equal(own, rank(queries, queries, 5, exclude_self=True)[1])


@pytest.mark.parametrize("chunk_size", [1, 5, None])
def test_first_relevant_rank_and_recall_against_brute_force(chunk_size):
    queries, gallery = _tied(30, 4, 3), _tied(45, 4, 4)
    g = torch.Generator().manual_seed(5)
    query_ids, gallery_ids = torch.randint(0, 12, (30,), generator=g), torch.randint(0, 12, (45,), generator=g)
    query_ids[0] = 99  # a query with no relevant item
    places = first_relevant_rank(queries, gallery, query_ids, gallery_ids, chunk_size=chunk_size)
    expected = []
    for i in range(30):
        order = _order(queries[i], gallery)
        hits = [p + 1 for p, j in enumerate(order) if gallery_ids[j] == query_ids[i]]
        expected.append(float(hits[0]) if hits else float("inf"))
    assert places.tolist() == expected
    recall = recall_from_ranks(places, ks=(1, 5, 10))
    found = [e for e in expected if e != float("inf")]  # query 0 has no relevant item: left out
    for k in (1, 5, 10):
        assert recall[f"R@{k}"] == pytest.approx(100 * sum(e <= k for e in found) / len(found))
    assert recall["MedR"] == _open_clip_medr([e - 1 for e in found]) and recall["skipped"] == 1


def _open_clip_medr(ranks: list[float]) -> float:
    """open_clip's (and VSE++'s) median rank, written out: 0-based ranks in, floor(np.median) + 1."""
    import numpy as np

    return float(np.floor(np.median(np.asarray(ranks))) + 1)


def test_median_rank_is_the_published_convention():
    assert recall_from_ranks(torch.tensor([1.0, 1.0, 3.0, 3.0]))["MedR"] == _open_clip_medr([0, 0, 2, 2]) == 2.0
    g = torch.Generator().manual_seed(0)
    for n in (1000, 999, 2):
        for _ in range(50):
            places = torch.randint(1, 40, (n,), generator=g).double()
            assert recall_from_ranks(places)["MedR"] == _open_clip_medr((places - 1).tolist())


def test_a_query_without_a_relevant_item_is_left_out_of_every_metric():
    """One rule for R@K, MedR, mAP and mAP@R: the query is dropped (pytorch-metric-learning's rule)."""
    x = torch.nn.functional.normalize(torch.randn(9, 4, generator=torch.Generator().manual_seed(3)), dim=1)
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3, 7])  # the last query's class has no other item
    keep = torch.arange(8)
    for k in (1, 3):  # brute force over the 8 queries that have a relevant item
        hits = [
            any(
                labels[j] == labels[i]
                for j in (x @ x[i]).index_fill(0, torch.tensor([i]), -2).argsort(descending=True)[:k]
            )
            for i in keep.tolist()
        ]
        assert recall_at_k(x, labels, ks=(k,))[k] == pytest.approx(100 * sum(hits) / 8)
    assert map_at_r(x, labels) == pytest.approx(
        100 * average_precision(x, x, labels, labels, at_r=True, exclude_self=True)[keep].mean().item()
    )


@pytest.mark.parametrize("at_r", [False, True])
@pytest.mark.parametrize("exclude_self", [False, True])
def test_average_precision_against_the_explicit_sum(at_r, exclude_self):
    queries = _tied(25, 4, 6)
    gallery = queries if exclude_self else _tied(40, 4, 7)
    g = torch.Generator().manual_seed(8)
    query_labels = torch.randint(0, 4, (25,), generator=g)
    gallery_labels = query_labels if exclude_self else torch.randint(0, 4, (40,), generator=g)
    ap = average_precision(
        queries, gallery, query_labels, gallery_labels, at_r=at_r, chunk_size=4, exclude_self=exclude_self
    )
    for i in range(25):
        order = _order(queries[i], gallery, skip=i if exclude_self else None)
        relevant = [bool(gallery_labels[j] == query_labels[i]) for j in order]
        r = sum(relevant)
        if r == 0:
            assert ap[i].isnan()
            continue
        cut = r if at_r else len(order)
        total, hits = 0.0, 0
        for place, hit in enumerate(relevant[:cut], start=1):
            hits += hit
            total += hits / place if hit else 0.0
        assert ap[i].item() == pytest.approx(total / r, abs=1e-12)


def test_average_precision_matches_sklearn_without_ties():
    metrics = require("sklearn.metrics")
    g = torch.Generator().manual_seed(9)
    queries, gallery = (
        torch.randn(20, 8, generator=g, dtype=torch.float64),
        torch.randn(60, 8, generator=g, dtype=torch.float64),
    )
    query_labels, gallery_labels = torch.randint(0, 3, (20,), generator=g), torch.randint(0, 3, (60,), generator=g)
    ap = average_precision(queries, gallery, query_labels, gallery_labels)
    scores = torch.nn.functional.normalize(queries, dim=1) @ torch.nn.functional.normalize(gallery, dim=1).T
    for i in range(20):
        expected = metrics.average_precision_score((gallery_labels == query_labels[i]).numpy(), scores[i].numpy())
        assert ap[i].item() == pytest.approx(expected, abs=1e-12)


def test_blocks_never_hold_more_than_a_chunk_of_queries(monkeypatch):
    queries, gallery = torch.randn(100, 8), torch.randn(70, 8)
    shapes = [block.shape for _, block in retrieval._blocks(queries, gallery, 16, False)]
    assert max(s[0] for s in shapes) == 16 and sum(s[0] for s in shapes) == 100
    monkeypatch.setattr(retrieval, "BLOCK_ELEMENTS", 700)  # automatic chunks: 700 // 70 = 10 queries
    assert max(b.shape[0] for _, b in retrieval._blocks(queries, gallery, None, False)) == 10
    ids = torch.arange(70) % 9
    small = first_relevant_rank(queries, gallery, torch.arange(100) % 9, ids)
    monkeypatch.setattr(retrieval, "BLOCK_ELEMENTS", 2**24)
    assert torch.equal(small, first_relevant_rank(queries, gallery, torch.arange(100) % 9, ids))


def test_cross_modal_retrieval_both_ways_with_several_captions_per_image():
    images = torch.eye(3)
    # captions 0, 1 of image 0; caption 2 of image 1; caption 3 of image 2 (but it looks like image 1)
    texts = torch.tensor([[1.0, 0, 0], [0.9, 0.1, 0], [0, 1.0, 0], [0, 1.0, 0.1]])
    text_ids = torch.tensor([0, 0, 1, 2])
    out = cross_modal_retrieval(images, texts, torch.arange(3), text_ids, ks=(1, 2))
    # image→text: image 0 finds caption 0 first (hit), image 1 caption 2 (hit), image 2 caption 3 (hit)
    assert out["i2t/R@1"] == pytest.approx(100.0) and out["i2t/MedR"] == 1
    # text→image: captions 0, 1, 2 hit at 1; caption 3's best image is 1, its own (2) is second
    assert out["t2i/R@1"] == pytest.approx(75.0) and out["t2i/R@2"] == pytest.approx(100.0)
    labelled = cross_modal_retrieval(
        images, texts, torch.arange(3), text_ids, torch.tensor([0, 1, 1]), torch.tensor([0, 0, 1, 1]), ks=(1,)
    )
    # texts 0, 1 (label 0) find image 0 first: AP 1; text 3 (label 1): images 1, 2 first: AP 1;
    # text 2 (label 1): image 1, then 0 and 2 tie (0 first, by index): AP (1/1 + 2/3) / 2
    assert labelled["t2i/mAP"] == pytest.approx(100 * (3 + (1 + 2 / 3) / 2) / 4)
    assert set(labelled) >= {"i2t/mAP", "i2t/mAP@R", "t2i/mAP@R"}


def test_retrieval_rejects_bad_input():
    x = torch.randn(5, 4)
    with pytest.raises(ValueError, match="query_ids must be a 1-D tensor of 5"):
        first_relevant_rank(x, x, torch.arange(4), torch.arange(5))
    with pytest.raises(ValueError, match="same width"):
        first_relevant_rank(x, torch.randn(5, 3), torch.arange(5), torch.arange(5))
    with pytest.raises(ValueError, match=r"k must be an int in \[1, 4\]"):
        rank(x, x, 5, exclude_self=True)
    with pytest.raises(ValueError, match="chunk_size"):
        rank(x, x, 2, chunk_size=0)
    with pytest.raises(ValueError, match="backend"):
        rank(x, x, 2, backend="annoy")
    with pytest.raises(ValueError, match="no query has a relevant item"):
        map_at_r(x, torch.arange(5))
