from __future__ import annotations

import pytest
import torch

from contrast.eval.linear import fit_logistic, linear_probe
from tests.conftest import require


def _features(seed=0, n=600, d=20, classes=5):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(classes, d, generator=g)
    y = torch.randint(0, classes, (n,), generator=g)
    return centres[y] * 0.7 + torch.randn(n, d, generator=g), y


def test_probe_matches_scikit_learn_logistic_regression():
    linear_model = require("sklearn.linear_model")
    x, y = _features(0)
    xt, yt = _features(1)
    result = linear_probe(x, y, xt, yt)
    mean, std = x.mean(0), x.std(0)
    wd = result.weight_decay
    clf = linear_model.LogisticRegression(C=1.0 / (len(x) * wd) if wd > 0 else 1e12, max_iter=5000, tol=1e-8)
    clf.fit(((x - mean) / std).numpy(), y.numpy())
    theirs = 100.0 * (clf.predict(((xt - mean) / std).numpy()) == yt.numpy()).mean()
    assert abs(result.top1 - theirs) <= 1.0, (result, theirs)
    assert set(result.validation) == {0.0, 1e-5, 1e-4, 1e-3, 1e-2}


def test_fit_logistic_reaches_scikit_learns_optimum():
    linear_model = require("sklearn.linear_model")
    x, y = _features(2, n=300, d=6, classes=3)
    x = (x - x.mean(0)) / x.std(0)
    wd = 1e-2
    weight, bias = fit_logistic(x, y, 3, wd)
    clf = linear_model.LogisticRegression(C=1.0 / (len(x) * wd), max_iter=10000, tol=1e-10).fit(x.numpy(), y.numpy())
    # The multinomial optimum is unique up to a shift of all classes' weights: compare centred weights.
    ours = weight.T - weight.T.mean(0)
    coef = torch.tensor(clf.coef_, dtype=torch.float64)
    theirs = coef - coef.mean(0)
    torch.testing.assert_close(ours, theirs, rtol=1e-3, atol=1e-3)


def test_probe_rejects_bad_input():
    x, y = _features()
    with pytest.raises(ValueError, match="labels"):
        linear_probe(x, y[:-1], x, y)
    with pytest.raises(ValueError, match="weight_decays"):
        linear_probe(x, y, x, y, weight_decays=(-1.0,))
