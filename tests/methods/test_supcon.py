"""SupCon (Khosla et al. 2020): the method's step equals its loss over the labels; unlabelled data is refused."""

from __future__ import annotations

import pytest
import torch

from contrast.data import ContrastiveData
from contrast.losses import sup_con
from contrast.methods import SupCon
from tests.methods.test_methods import _quiet_trainer, _views

SMALL = dict(projector_hidden=64, projector_dim=32)


def test_supcon_uses_the_labels_and_equals_its_loss():
    torch.manual_seed(0)
    model = SupCon(backbone="tiny_cnn", num_classes=10, **SMALL)
    q, k, labels = _views(16)
    loss, _ = model.contrastive_step(q, k, labels)
    with torch.no_grad():
        z = model.projector(model.encode(torch.cat([q, k])))
    torch.testing.assert_close(loss.detach(), sup_con(z[:16], z[16:], labels, 0.1), rtol=1e-6, atol=1e-6)


def test_supcon_on_unlabelled_data_stops_before_training(tmp_path):
    from PIL import Image

    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(40):
        Image.fromarray(torch.randint(0, 255, (32, 32, 3), dtype=torch.uint8).numpy()).save(folder / f"{i}.png")
    data = ContrastiveData(dataset="imagefolder", root=str(folder), recipe_q="simclr_cifar10", batch_size=16)
    model = SupCon(backbone="tiny_cnn", num_classes=0, **SMALL)
    with pytest.raises(ValueError, match="SupCon needs labelled training images"):
        _quiet_trainer(max_steps=1, enable_checkpointing=False, default_root_dir=tmp_path).fit(model, data)
