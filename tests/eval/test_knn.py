"""Weighted kNN against a brute-force float64 reference written here."""

from __future__ import annotations

import warnings

import pytest
import torch

from contrast.eval import KNNEvaluator

BACKENDS = ["torch", "faiss"]


def reference_predictions(train, train_labels, queries, k, tau, weighting, num_classes):
    """Loop over queries in float64: cosine similarities, k nearest, exp(s/τ) votes, stable ranking."""
    train = train.double() / train.double().norm(dim=1, keepdim=True)
    queries = queries.double() / queries.double().norm(dim=1, keepdim=True)
    out = []
    for q in queries:
        sims = train @ q
        order = sorted(range(len(sims)), key=lambda i: (-sims[i].item(), i))[: min(k, len(sims))]
        scores = [0.0] * num_classes
        for i in order:
            scores[int(train_labels[i])] += torch.exp(sims[i] / tau).item() if weighting == "weighted" else 1.0
        ranking = sorted(range(num_classes), key=lambda c: (-scores[c], c))
        out.append(ranking)
    return torch.tensor(out)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("k", [1, 5, 20, 200])
@pytest.mark.parametrize("weighting", ["weighted", "majority"])
def test_predictions_equal_the_brute_force_reference(backend, k, weighting):
    g = torch.Generator().manual_seed(k)
    train, queries = torch.randn(300, 16, generator=g), torch.randn(40, 16, generator=g)
    labels = torch.randint(0, 7, (300,), generator=g)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        knn = KNNEvaluator(k=k, temperature=0.07, weighting=weighting, backend=backend).fit(train, labels)
        ours = knn.predict(queries, top=5)
    ref = reference_predictions(train, labels, queries, k, 0.07, weighting, 7)[:, :5]
    assert torch.equal(ours, ref)


def test_backends_agree_on_larger_data():
    g = torch.Generator().manual_seed(0)
    train, queries = torch.randn(5000, 64, generator=g), torch.randn(500, 64, generator=g)
    labels = torch.randint(0, 10, (5000,), generator=g)
    a = KNNEvaluator(k=200, backend="faiss").fit(train, labels).predict(queries, 5)
    b = KNNEvaluator(k=200, backend="torch", batch_size=128).fit(train, labels).predict(queries, 5)
    assert torch.equal(a, b)


@pytest.mark.parametrize("backend", BACKENDS)
def test_vote_ties_go_to_the_lower_class(backend):
    train = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    labels = torch.tensor([3, 3, 1, 1])
    query = torch.tensor([[1.0, 1.0]])  # equally similar to both classes
    knn = KNNEvaluator(k=4, backend=backend).fit(train, labels)
    assert knn.predict(query, 2).tolist() == [[1, 3]]


@pytest.mark.parametrize("backend", BACKENDS)
def test_separable_clusters_are_classified_perfectly(backend):
    g = torch.Generator().manual_seed(1)
    centres = torch.randn(5, 32, generator=g) * 10
    labels = torch.arange(5).repeat_interleave(40)
    train = centres[labels] + torch.randn(200, 32, generator=g)
    test_labels = torch.arange(5).repeat_interleave(10)
    test = centres[test_labels] + torch.randn(50, 32, generator=g)
    result = KNNEvaluator(k=20, backend=backend).fit(train, labels).score(test, test_labels)
    assert result == {"top1": 100.0, "top5": 100.0}


def test_k_larger_than_the_train_set_is_clamped_with_a_warning():
    train, labels = torch.randn(10, 4), torch.arange(10) % 3
    with pytest.warns(UserWarning, match="using k=10"):  # once, when fitted; not on every search
        knn = KNNEvaluator(k=200, backend="torch").fit(train, labels)
    sims, index = knn.neighbours(torch.randn(3, 4))
    assert index.shape == (3, 10)


def test_top5_with_fewer_than_five_classes():
    train, labels = torch.randn(30, 4), torch.arange(30) % 3
    result = KNNEvaluator(k=5).fit(train, labels).score(torch.randn(6, 4), torch.arange(6) % 3)
    assert result["top5"] == 100.0  # all 3 classes are in the top 3


@pytest.mark.parametrize(
    "call,message",
    [
        (lambda: KNNEvaluator(k=0), "k must be"),
        (lambda: KNNEvaluator(temperature=0), "temperature"),
        (lambda: KNNEvaluator(backend="annoy"), "backend"),
        (lambda: KNNEvaluator().fit(torch.randn(5, 3), torch.zeros(4, dtype=torch.long)), "one label per"),
        (lambda: KNNEvaluator().fit(torch.randn(5, 3), torch.zeros(5)), "integer class ids"),
        (lambda: KNNEvaluator().fit(torch.randn(0, 3), torch.zeros(0, dtype=torch.long)), "non-empty"),
        (
            lambda: KNNEvaluator().fit(torch.randn(5, 3), torch.zeros(5, dtype=torch.long)).predict(torch.randn(2, 4)),
            "dimension",
        ),
        (lambda: KNNEvaluator().predict(torch.randn(2, 3)), "call fit"),
    ],
)
def test_bad_input(call, message):
    with pytest.raises((ValueError, RuntimeError), match=message):
        call()


def test_a_bank_normalised_in_place_gives_the_same_predictions_and_no_copy():
    import torch.nn.functional as F

    from contrast.eval.knn import KNN_BLOCK_ELEMENTS, KNNEvaluator

    g = torch.Generator().manual_seed(0)
    train, labels = torch.randn(500, 16, generator=g), torch.randint(0, 4, (500,), generator=g)
    queries = torch.randn(60, 16, generator=g)
    copied = KNNEvaluator(k=20, backend="torch").fit(train, labels)
    assert not torch.equal(copied.train_features, train)  # the caller's bank untouched
    bank = train.clone()
    inplace = KNNEvaluator(k=20, backend="torch").fit(bank, labels, copy=False)
    assert inplace.train_features.data_ptr() == bank.data_ptr()  # no second bank
    torch.testing.assert_close(bank, F.normalize(train.double(), dim=1).float(), rtol=0, atol=1e-7)
    assert torch.equal(copied.predict(queries, 5), inplace.predict(queries, 5))
    assert KNN_BLOCK_ELEMENTS // 1_281_167 == 209  # ImageNet's bank: 209 queries a block, 1 GiB of similarities
