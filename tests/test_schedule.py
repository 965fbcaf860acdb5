"""The one learning-rate schedule: linear warmup, then cosine to zero, against its formula."""

from __future__ import annotations

import math

import pytest

from contrast.schedule import WarmupCosine


def test_warmup_cosine_schedule():
    schedule = WarmupCosine(warmup=10, total=110)
    assert schedule(0) == pytest.approx(0.1) and schedule(9) == pytest.approx(1.0)
    assert schedule(10) == pytest.approx(1.0) and schedule(60) == pytest.approx(0.5) and schedule(110) == 0.0


def test_without_warmup_it_is_the_cosine_of_the_feature_mode():
    schedule = WarmupCosine(0, 37)
    for step in range(38):
        assert schedule(step) == pytest.approx(0.5 * (1 + math.cos(math.pi * step / 37)), abs=1e-15)
