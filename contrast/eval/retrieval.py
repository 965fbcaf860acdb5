"""Retrieval metrics on embeddings, computed in chunks of queries (never the full N×M matrix).

Everything ranks by cosine similarity, best first, and breaks ties by the lower gallery index, so
every figure is deterministic. Similarities are computed in float64 and compared on a grid of
2**-32: equal embeddings (the same caption twice) then tie exactly, whatever the chunking or the
matrix-product kernel, where float32 products differ in their last bits from one block shape to
another. One routine per kind of question:

* :func:`rank`: each query's k nearest gallery items (scores and indices);
* :func:`first_relevant_rank`: the 1-based place of each query's best-placed relevant item, where
  "relevant" means equal ids (pair identity: a caption and its image share an id; several
  captions per image share it too). Recall@K is the fraction of queries with that place ≤ K, the
  median rank its median (Faghri et al. 2018, "VSE++"; open_clip's R@K);
* :func:`average_precision`: each query's AP over the whole ranked gallery with label relevance
  (the mAP of cross-modal retrieval papers, e.g. Wang et al. 2017, "ACMR"), or AP@R (Musgrave et
  al. 2020, "A Metric Learning Reality Check").

Memory: a block of ``chunk_size`` queries × the gallery at a time (``chunk_size=None`` keeps a
block at about 2**24 similarities, 128 MiB; :func:`contrast.blocks.block_rows`).

On top of them: label-based Recall@K and mAP@R (metric learning), cross-view and cross-modal
Recall@K both ways, and the alignment / uniformity of Wang & Isola (2020).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from contrast.blocks import BLOCK_ELEMENTS, block_rows
from contrast.checks import ConfigError

GRID = 2.0**32  # similarities are compared at this resolution (ties within 2**-32)
BACKENDS = ("torch", "faiss")


def _check(x: Tensor, name: str, normalize: bool = True, grid: bool = True) -> Tensor:
    if not isinstance(x, Tensor) or x.dim() != 2 or x.shape[0] == 0 or not x.is_floating_point():
        raise ValueError(f"{name} must be a non-empty floating (N, D) tensor, got {getattr(x, 'shape', x)}")
    x = x.detach().double() if grid else x.detach().float()
    return F.normalize(x, dim=1) if normalize else x


def _check_ids(ids: Tensor, n: int, name: str) -> Tensor:
    if not isinstance(ids, Tensor) or ids.dim() != 1 or ids.shape[0] != n:
        raise ValueError(
            f"{name} must be a 1-D tensor of {n} ids or labels (one per row), got {getattr(ids, 'shape', ids)}"
        )
    return ids


def _blocks(queries: Tensor, gallery: Tensor, chunk_size: int | None, exclude_self: bool, grid: bool = True):
    """Yield (start, similarities (c, G)) block by block; self-similarities -inf with ``exclude_self``;
    ``grid``: rounded to 2**-32 (float64 input), so that equal embeddings tie whatever the block."""
    if queries.shape[1] != gallery.shape[1]:
        raise ValueError(f"queries and gallery must have the same width, got {queries.shape[1]} and {gallery.shape[1]}")
    if exclude_self and queries.shape[0] != gallery.shape[0]:
        raise ValueError("exclude_self needs the queries to be the gallery")
    step = block_rows(queries.shape[0], gallery.shape[0], chunk_size, block_elements=BLOCK_ELEMENTS)
    for start in range(0, queries.shape[0], step):
        block = queries[start : start + step] @ gallery.T  # (c, G)
        if grid:
            block = block.mul_(GRID).round_().div_(GRID)
        if exclude_self:
            rows = torch.arange(block.shape[0], device=block.device)
            block[rows, rows + start] = float("-inf")
        yield start, block
        del block  # before the next block is computed: one block alive at a time (the caller drops its own)


def rank(
    queries: Tensor,
    gallery: Tensor,
    k: int,
    *,
    chunk_size: int | None = None,
    exclude_self: bool = False,
    backend: str = "torch",
    normalize: bool = True,
    grid: bool = True,
) -> tuple[Tensor, Tensor]:
    """(scores, indices), each (Nq, k): the k most similar gallery rows of every query, best first,
    ties broken by the lower index: the package's one exact neighbour search (the kNN classifier
    uses it too). ``exclude_self``: the queries are the gallery, and row i is not its own neighbour.
    ``normalize=False`` ranks by raw inner products instead of cosine similarity. ``grid=False``
    (the kNN classifier) compares float32 similarities as they are, without the float64 grid: the
    same tie rule, on exactly equal float32 scores; at a fraction of the cost on a CPU or GPU.
    ``backend="faiss"`` runs faiss's exact inner-product search (``faiss.knn``, on the gallery where it
    lies; faster on large galleries on a CPU) and orders ties by index within the k it returns."""
    if backend not in BACKENDS:
        raise ConfigError("backend", f"backend must be one of {BACKENDS}, got {backend!r}")
    queries, gallery = _check(queries, "queries", normalize, grid), _check(gallery, "gallery", normalize, grid)
    available = gallery.shape[0] - (1 if exclude_self else 0)
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= available:
        raise ValueError(f"k must be an int in [1, {available}] (the gallery's size), got {k!r}")
    if backend == "faiss":
        return _rank_faiss(queries, gallery, k, exclude_self, grid)
    scores, indices = [], []
    for _, block in _blocks(queries, gallery, chunk_size, exclude_self, grid):
        top, where = _top_k(block, k)
        del block  # one block alive at a time
        scores.append(top)
        indices.append(where)
    return torch.cat(scores), torch.cat(indices)


def _top_k(block: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """(scores, indices) (c, k): each row's k largest, best first, ties by the lower index. One
    ``topk`` of k + 1: a row whose (k+1)-th score equals its k-th has a tie across the k-th place
    (rare) and takes the exact repair, a row at a time: every score above the k-th, then the
    lowest-index ties at the k-th. No (c, G) mask or count beside the block."""
    extra = min(k + 1, block.shape[1])
    top, where = block.topk(extra, dim=1)  # (c, k+1), best first, ties in no particular order
    shared = (top[:, k] == top[:, k - 1]).nonzero().flatten() if extra > k else top.new_empty(0, dtype=torch.long)
    top, where = top[:, :k], where[:, :k]
    kth = top[:, -1:]  # (c, 1)
    if shared.numel():
        where = where.clone()
        for row in shared.tolist():  # a row at a time: the masks are (G,), never (r, G) beside the block
            scores, bar = block[row], kth[row]
            above = (scores > bar).nonzero().flatten()
            tied = (scores == bar).nonzero().flatten()[: k - above.numel()]  # the lowest-index ties
            where[row] = torch.cat([above, tied])  # exactly k
        top = block.gather(1, where)
    by_index = where.argsort(dim=1)  # then stably by score: equal scores keep index order
    top, where = top.gather(1, by_index), where.gather(1, by_index)
    order = top.argsort(dim=1, descending=True, stable=True)
    return top.gather(1, order), where.gather(1, order)


def _rank_faiss(
    queries: Tensor, gallery: Tensor, k: int, exclude_self: bool, grid: bool = True
) -> tuple[Tensor, Tensor]:
    import faiss
    import numpy as np

    # faiss.knn searches the gallery where it lies (a float32 CPU tensor is not copied); an index
    # (IndexFlatIP.add) would hold a second copy of it: twice the bank at a million rows
    gallery_np = np.ascontiguousarray(gallery.float().cpu().numpy())
    queries_np = np.ascontiguousarray(queries.float().cpu().numpy())
    scores, indices = faiss.knn(queries_np, gallery_np, k + int(exclude_self), metric=faiss.METRIC_INNER_PRODUCT)
    scores, indices = torch.from_numpy(scores), torch.from_numpy(indices)
    if grid:
        scores = scores.double().mul_(GRID).round_().div_(GRID)
    if exclude_self:
        own = indices == torch.arange(indices.shape[0])[:, None]
        scores = scores.masked_fill(own, float("-inf"))
    # order by (score descending, index ascending): sort by index, then stably by score
    by_index = indices.argsort(dim=1)
    scores, indices = scores.gather(1, by_index), indices.gather(1, by_index)
    order = scores.argsort(dim=1, descending=True, stable=True)
    return scores.gather(1, order)[:, :k], indices.gather(1, order)[:, :k]


def first_relevant_rank(
    queries: Tensor,
    gallery: Tensor,
    query_ids: Tensor,
    gallery_ids: Tensor,
    *,
    chunk_size: int | None = None,
    exclude_self: bool = False,
) -> Tensor:
    """(Nq,) the 1-based place of each query's best-placed relevant gallery item (gallery item j is
    relevant to query i when ``gallery_ids[j] == query_ids[i]``); ``inf`` for a query with none.

    Computed without sorting: place = #(scores above the best relevant score) + #(equal scores at a
    lower index) + 1, which is where that item lands in the index-tie-broken order."""
    queries, gallery = _check(queries, "queries"), _check(gallery, "gallery")
    query_ids = _check_ids(query_ids, queries.shape[0], "query_ids").to(queries.device)
    gallery_ids = _check_ids(gallery_ids, gallery.shape[0], "gallery_ids").to(queries.device)
    columns = torch.arange(gallery.shape[0], device=queries.device)  # (G,)
    places = []
    for start, block in _blocks(queries, gallery, chunk_size, exclude_self):
        relevant = query_ids[start : start + block.shape[0], None] == gallery_ids[None, :]  # (c, G)
        relevant &= block > float("-inf")  # not itself
        best = block.masked_fill(~relevant, float("-inf")).amax(dim=1, keepdim=True)  # (c, 1)
        at_best = relevant & (block == best)
        first = torch.where(at_best, columns, gallery.shape[0]).amin(dim=1, keepdim=True)  # (c, 1) its index
        place = (block > best).sum(1) + ((block == best) & (columns < first)).sum(1) + 1  # (c,)
        places.append(torch.where(relevant.any(dim=1), place.double(), float("inf")))
    return torch.cat(places)


def recall_from_ranks(places: Tensor, ks: tuple[int, ...] = (1, 5, 10)) -> dict[str, float]:
    """{"R@K": percent of queries whose first relevant item is within the top K, "MedR": median place}.

    MedR is VSE++'s and open_clip's ``floor(np.median(ranks)) + 1`` on 0-based ranks: for an even
    number of queries the floor of the mean of the two middle places (1-based places 1, 1, 3, 3 give
    2; torch's lower median would give 1). A query with no relevant item in the gallery (place
    ``inf``) is left out of every figure, as pytorch-metric-learning leaves it out (and as mAP has
    to); ``"skipped"`` counts such queries when there are any."""
    found = places[torch.isfinite(places)]
    if found.numel() == 0:
        raise ValueError("no query has a relevant item in the gallery")
    out = {f"R@{k}": 100.0 * (found <= k).double().mean().item() for k in ks}
    out["MedR"] = float(torch.quantile(found.double(), 0.5).floor())  # the mean of the middle two, floored
    if found.numel() < places.numel():
        out["skipped"] = float(places.numel() - found.numel())
    return out


def average_precision(
    queries: Tensor,
    gallery: Tensor,
    query_labels: Tensor,
    gallery_labels: Tensor,
    *,
    at_r: bool = False,
    chunk_size: int | None = None,
    exclude_self: bool = False,
) -> Tensor:
    """(Nq,) average precision of each query with label relevance (gallery item j is relevant to
    query i when their labels are equal), NaN for a query with no relevant item.

    ``at_r=False``: AP over the whole ranking, (1/R) Σ_i P(i)·rel(i), R = number of relevant items
    (the ACMR protocol's mAP). ``at_r=True``: AP@R, the same sum over the top R places only."""
    whole, within_r = average_precisions(
        queries, gallery, query_labels, gallery_labels, chunk_size=chunk_size, exclude_self=exclude_self
    )
    return within_r if at_r else whole


def average_precisions(
    queries: Tensor,
    gallery: Tensor,
    query_labels: Tensor,
    gallery_labels: Tensor,
    *,
    chunk_size: int | None = None,
    exclude_self: bool = False,
) -> tuple[Tensor, Tensor]:
    """(AP over the whole ranking, AP@R), each (Nq,), from one sort of each block (see
    :func:`average_precision`)."""
    queries, gallery = _check(queries, "queries"), _check(gallery, "gallery")
    query_labels = _check_ids(query_labels, queries.shape[0], "query_labels").to(queries.device)
    gallery_labels = _check_ids(gallery_labels, gallery.shape[0], "gallery_labels").to(queries.device)
    places = torch.arange(1, gallery.shape[0] + 1, device=queries.device, dtype=torch.float64)  # (G,)
    whole, within_r = [], []
    for start, block in _blocks(queries, gallery, chunk_size, exclude_self):
        order = block.sort(dim=1, descending=True, stable=True).indices  # (c, G), self (-inf) last
        labels = query_labels[start : start + block.shape[0], None]
        hits = (gallery_labels[order] == labels) & (block.gather(1, order) > float("-inf"))  # (c, G)
        hits = hits.double()
        relevant = hits.sum(dim=1)  # (c,) R
        precision_at_hits = hits * hits.cumsum(dim=1) / places  # (c, G) P(i)·rel(i)
        whole.append(precision_at_hits.sum(dim=1) / relevant)  # NaN where R = 0
        within_r.append((precision_at_hits * (places[None, :] <= relevant[:, None])).sum(dim=1) / relevant)
    return torch.cat(whole), torch.cat(within_r)


def _mean_defined(values: Tensor, what: str) -> float:
    defined = values[~values.isnan()]
    if defined.numel() == 0:
        raise ValueError(f"{what}: no query has a relevant item in the gallery")
    return 100.0 * defined.mean().item()


# ---------------------------------------------------------------------- metric learning (one modality)
def _gallery(query_labels: Tensor, database: Tensor | None, database_labels: Tensor | None, queries: Tensor):
    """(gallery, its labels, whether it is the queries themselves) for the metric-learning metrics."""
    if database is None:
        return queries, query_labels, True
    if database_labels is None:
        raise ValueError("database_labels are required with a database")
    return database, database_labels, False


def recall_at_k(
    queries: Tensor,
    query_labels: Tensor,
    database: Tensor | None = None,
    database_labels: Tensor | None = None,
    ks: tuple[int, ...] = (1, 5, 10),
) -> dict[int, float]:
    """Label-based Recall@K in percent (Song et al. 2016): queries with an item of their own class
    among their K nearest; the query itself excluded when the queries are the database. A query
    whose class has no other item is left out (the rule of every metric here, see
    :func:`recall_from_ranks`)."""
    gallery, gallery_labels, same = _gallery(query_labels, database, database_labels, queries)
    places = first_relevant_rank(queries, gallery, query_labels, gallery_labels, exclude_self=same)
    scores = recall_from_ranks(places, ks)
    return {k: scores[f"R@{k}"] for k in ks}


def map_at_r(
    queries: Tensor, query_labels: Tensor, database: Tensor | None = None, database_labels: Tensor | None = None
) -> float:
    """Mean average precision at R in percent (queries with no relevant item are skipped)."""
    gallery, gallery_labels, same = _gallery(query_labels, database, database_labels, queries)
    ap = average_precision(queries, gallery, query_labels, gallery_labels, at_r=True, exclude_self=same)
    return _mean_defined(ap, "map_at_r")


def cross_view_recall(q: Tensor, k: Tensor, ks: tuple[int, ...] = (1, 5, 10)) -> dict[str, float]:
    """Recall@K in percent of paired embeddings, both ways: keys "q2k@K" and "k2q@K"."""
    if q.shape != k.shape:
        raise ValueError(f"q and k must have the same shape, got {tuple(q.shape)} and {tuple(k.shape)}")
    ids = torch.arange(q.shape[0])
    out = {}
    for name, a, b in (("q2k", q, k), ("k2q", k, q)):
        places = first_relevant_rank(a, b, ids, ids)
        out |= {f"{name}@{kk}": 100.0 * (places <= kk).double().mean().item() for kk in ks}
    return out


# ---------------------------------------------------------------------- two modalities
def cross_modal_retrieval(
    images: Tensor,
    texts: Tensor,
    image_ids: Tensor,
    text_ids: Tensor,
    image_labels: Tensor | None = None,
    text_labels: Tensor | None = None,
    *,
    ks: tuple[int, ...] = (1, 5, 10),
    chunk_size: int | None = None,
) -> dict[str, float]:
    """Both directions at once: ``i2t/R@K``, ``i2t/MedR`` (image queries, text gallery) and
    ``t2i/...``, with a hit when ids are equal (the caption belongs to, or describes, the image);
    with labels also ``i2t/mAP``, ``t2i/mAP`` (whole ranking) and ``.../mAP@R``, label relevance."""
    out: dict[str, float] = {}
    for name, q, g, q_ids, g_ids in (
        ("i2t", images, texts, image_ids, text_ids),
        ("t2i", texts, images, text_ids, image_ids),
    ):
        places = first_relevant_rank(q, g, q_ids, g_ids, chunk_size=chunk_size)
        out |= {f"{name}/{key}": value for key, value in recall_from_ranks(places, ks).items()}
    if image_labels is not None and text_labels is not None:
        for name, q, g, q_labels, g_labels in (
            ("i2t", images, texts, image_labels, text_labels),
            ("t2i", texts, images, text_labels, image_labels),
        ):
            whole, within_r = average_precisions(q, g, q_labels, g_labels, chunk_size=chunk_size)
            out[f"{name}/mAP"] = _mean_defined(whole, f"{name} mAP")
            out[f"{name}/mAP@R"] = _mean_defined(within_r, f"{name} mAP@R")
    return out
