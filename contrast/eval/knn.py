"""Weighted k-nearest-neighbour classifier on frozen features (Wu et al. 2018).

For each query q (L2-normalised, as every train feature): take its k most similar training
features by cosine similarity s_i; each neighbour votes for its class with weight
``exp(s_i / τ)`` ("weighted", the protocol of Wu et al. 2018, "Unsupervised Feature Learning via
Non-Parametric Instance Discrimination", used by InstDisc, MoCo, SimCLR-style CIFAR reports)
or with weight 1 ("majority"). Classes are ranked by their summed votes; top-1 / top-5 accuracy.

Conventions (both backends give identical predictions):
* neighbours are found by :func:`contrast.eval.retrieval.rank` (exact; similarity ties go to the
  lower train index);
* class-score ties go to the lower class index (stable sort);
* ``k`` larger than the training set is clamped to its size (with a warning);
* the weights are computed as ``exp((s_i - max_j s_j) / τ)``: the same ranking without overflow.

τ = 0.1 is the default everywhere in this package (the CIFAR convention of lightly's benchmarks,
the MoCo CIFAR demo and Wu et al.'s CIFAR script); τ = 0.07 is the ImageNet protocol.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import Tensor

from contrast.blocks import BLOCK_ELEMENTS, block_rows
from contrast.checks import ConfigError, finite_number, int_at_least, one_of
from contrast.eval.features import check_finite
from contrast.eval.retrieval import rank

BACKENDS = ("faiss", "torch", "auto")
KNN_BLOCK_ELEMENTS = 2**28  # similarities per search block: 1 GiB of float32
WEIGHTINGS = ("weighted", "majority")


def _faiss_available() -> bool:
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


class KNNEvaluator:
    """Fit on (train features, labels), then score or predict queries.

        knn = KNNEvaluator(k=200, temperature=0.1).fit(train_features, train_labels)
        accuracy = knn.score(test_features, test_labels)   # {"top1": ..., "top5": ...} in percent

    Args:
        k: neighbours per query.
        temperature: τ of the exp(s/τ) vote weights (ignored by majority vote).
        weighting: "weighted" (Wu et al.) or "majority".
        backend: "faiss" (IndexFlatIP, exact, CPU), "torch" (matmul + top-k on the features'
            device, for GPUs), or "auto" (faiss for CPU tensors when installed, else torch).
        normalize: L2-normalise features (cosine similarity). False uses raw inner products.
        batch_size: queries per search block (memory: batch × N_train similarities); None: as many
            as fit in ``KNN_BLOCK_ELEMENTS`` similarities (1 GiB of float32: 4096 queries against
            CIFAR's 50,000, 209 against ImageNet's 1.28 M), so the search takes the bank plus one block.

    ``fit(..., copy=False)`` normalises a float32 bank in place (block by block) instead of keeping
    a normalised copy: the bank's memory once, not twice (the callback and ``contrast knn`` own
    their features and do so).
    """

    def __init__(
        self,
        k: int = 200,
        temperature: float = 0.1,
        weighting: str = "weighted",
        backend: str = "auto",
        normalize: bool = True,
        batch_size: int | None = None,
    ) -> None:
        int_at_least("k", k)
        finite_number("temperature", temperature, minimum=0, strictly=True)
        one_of("weighting", weighting, WEIGHTINGS)
        one_of("backend", backend, BACKENDS)
        if backend == "faiss" and not _faiss_available():
            raise ConfigError("backend", "backend='faiss' needs faiss (pip install faiss-cpu); or use backend='torch'")
        int_at_least("batch_size", batch_size, optional=True)
        self.k, self.temperature, self.weighting = k, float(temperature), weighting
        self.backend, self.normalize, self.batch_size = backend, normalize, batch_size
        self.train_features: Tensor | None = None

    # ------------------------------------------------------------------ fit
    def fit(self, features: Tensor, labels: Tensor, copy: bool = True) -> KNNEvaluator:
        features, labels = self._check(features, "features"), labels
        if not isinstance(labels, Tensor) or labels.dim() != 1 or labels.shape[0] != features.shape[0]:
            raise ValueError(
                f"labels must be a 1-D tensor with one label per feature row ({features.shape[0]}), "
                f"got {getattr(labels, 'shape', type(labels).__name__)}"
            )
        if labels.dtype.is_floating_point or labels.dtype == torch.bool:
            raise ValueError(f"labels must be integer class ids, got dtype {labels.dtype}")
        if bool((labels < 0).any()):
            raise ValueError("labels must be non-negative class ids")
        self.train_features = self._prepare(features, copy)
        self.train_labels = labels.long().to(features.device)
        if self.k > features.shape[0]:
            warnings.warn(
                f"k={self.k} is larger than the training set ({features.shape[0]}); using k={features.shape[0]}",
                stacklevel=2,
            )
        self.num_classes = int(labels.max()) + 1
        self._backend = self.backend
        if self._backend == "auto":
            self._backend = "faiss" if features.device.type == "cpu" and _faiss_available() else "torch"
        return self

    def _check(self, features: Tensor, name: str) -> Tensor:
        if not isinstance(features, Tensor) or features.dim() != 2 or features.shape[0] == 0:
            raise ValueError(
                f"{name} must be a non-empty 2-D (N, D) tensor, "
                f"got {getattr(features, 'shape', type(features).__name__)}"
            )
        if not features.is_floating_point():
            raise ValueError(f"{name} must be floating point, got {features.dtype}")
        check_finite(features, name, block_rows=max(1, BLOCK_ELEMENTS // max(1, features.shape[1])))
        return features

    def _prepare(self, features: Tensor, copy: bool = True) -> Tensor:
        """float32 rows, L2-normalised when ``normalize``; in place (a block at a time) for a float32
        bank with ``copy=False``, else into one new tensor."""
        if not self.normalize:
            return features.float().contiguous()
        inplace = not copy and features.dtype == torch.float32 and features.is_contiguous()
        out = features if inplace else torch.empty(features.shape, dtype=torch.float32, device=features.device)
        step = max(1, BLOCK_ELEMENTS // max(1, features.shape[1]))  # 64 MiB of float32 rows at a time
        for start in range(0, features.shape[0], step):
            block = features[start : start + step].float()
            out[start : start + step] = F.normalize(block, dim=1)
        return out

    # ------------------------------------------------------------------ neighbours and votes
    def neighbours(self, queries: Tensor) -> tuple[Tensor, Tensor]:
        """(N, k) similarities and train indices of each query's nearest neighbours, most similar first."""
        if self.train_features is None:
            raise RuntimeError("call fit(train_features, train_labels) before predicting")
        queries = self._prepare(self._check(queries, "queries"))
        if queries.shape[1] != self.train_features.shape[1]:
            raise ValueError(
                f"queries have dimension {queries.shape[1]} but the train features {self.train_features.shape[1]}"
            )
        # the package's one exact search: blocks of batch_size queries, ties by the lower train index
        train = self.train_features.to(queries.device)
        return rank(
            queries,
            train,
            self.effective_k,
            chunk_size=self.batch_size
            or block_rows(queries.shape[0], train.shape[0], block_elements=KNN_BLOCK_ELEMENTS),
            backend=self._backend,
            normalize=False,
            grid=False,  # the features' float32, as they are: a fraction of the float64 grid's cost
        )

    @property
    def effective_k(self) -> int:
        return min(self.k, self.train_features.shape[0])

    def describe(self, features: str = "backbone features") -> str:
        """The protocol in words, for every printed or logged figure: 'kNN (weighted, k=200, τ=0.1, ...)'."""
        tau = f", τ={self.temperature:g}" if self.weighting == "weighted" else ""
        return f"kNN ({self.weighting}, k={self.k}{tau}, {features})"

    def class_scores(self, queries: Tensor) -> Tensor:
        """(N, C) summed votes per class."""
        sims, index = self.neighbours(queries)
        labels = self.train_labels.to(index.device)[index]
        if self.weighting == "weighted":
            weights = torch.exp((sims - sims[:, :1]) / self.temperature)  # sims[:, 0] is the row max
        else:
            weights = torch.ones_like(sims)
        scores = torch.zeros(sims.shape[0], self.num_classes, device=sims.device, dtype=sims.dtype)
        return scores.scatter_add_(1, labels, weights)

    def predict(self, queries: Tensor, top: int = 1) -> Tensor:
        """(N, top) class ids, best first; ties go to the lower class id."""
        order = torch.sort(self.class_scores(queries), dim=1, descending=True, stable=True).indices
        return order[:, :top]

    def score(self, queries: Tensor, labels: Tensor) -> dict[str, float]:
        """Top-1 and top-5 accuracy in percent."""
        if labels.shape[0] != queries.shape[0]:
            raise ValueError(f"labels ({labels.shape[0]}) and queries ({queries.shape[0]}) differ in length")
        top = min(5, self.num_classes)
        predictions = self.predict(queries, top).cpu()
        hits = predictions == labels.long().cpu()[:, None]
        return {"top1": 100.0 * hits[:, 0].float().mean().item(), "top5": 100.0 * hits.any(dim=1).float().mean().item()}
