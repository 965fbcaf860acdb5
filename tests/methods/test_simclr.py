"""SimCLR: the loss it is given (NT-Xent, DCL, DCLW) and a loss it does not know."""

from __future__ import annotations

import pytest

from contrast.losses import DCLLoss, NTXent
from contrast.methods import SimCLR

SMALL = dict(projector_hidden=64, projector_dim=32)


def test_simclr_trains_with_the_loss_it_is_given():
    assert isinstance(SimCLR(backbone="tiny_cnn", **SMALL).criterion, NTXent)
    for name, weighting in (("dcl", None), ("dclw", "vmf")):
        criterion = SimCLR(backbone="tiny_cnn", loss=name, temperature=0.1, **SMALL).criterion
        assert isinstance(criterion, DCLLoss) and criterion.weighting == weighting


def test_an_unknown_loss_is_refused():
    with pytest.raises(ValueError, match="loss must be one of"):
        SimCLR(loss="infonce")
