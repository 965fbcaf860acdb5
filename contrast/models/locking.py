"""Locking a tower, wholly or but for its last layer groups (LiT, Zhai et al. 2022; open_clip's
``--lock-image-unlocked-groups`` and ``--lock-text-unlocked-layers``).

A tower's layer groups, in forward order (:func:`layer_groups`): a torchvision ResNet's stem,
``layer1`` … ``layer4``; the tiny CNN's conv-BN-ReLU blocks; the text transformer's embeddings, each
block (the last with its final norm); a tower that names its own (``layer_groups()``: a Hugging Face
model's embeddings and blocks, open_clip's groups of its towers); otherwise the module's top-level
children. :func:`lock` freezes all but the last ``unlocked`` groups; the normalisation layers of the
frozen part keep their statistics (:func:`keep_frozen_statistics`, called after every ``train()``).
"""

from __future__ import annotations

from torch import nn

from contrast.checks import ConfigError, int_at_least

_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm, nn.GroupNorm, nn.LayerNorm)


def layer_groups(module: nn.Module) -> list[list[nn.Module]]:
    """The layer groups of a tower, in forward order (each a list of modules)."""
    if hasattr(module, "layer_groups"):  # a tower that names its own (a pretrained Hugging Face model)
        return module.layer_groups()
    if hasattr(module, "layer4") and hasattr(module, "conv1"):  # a torchvision ResNet
        stem = [module.conv1, module.bn1]
        return [stem, [module.layer1], [module.layer2], [module.layer3], [module.layer4]]
    if hasattr(module, "features") and isinstance(module.features, nn.Sequential) and hasattr(module, "feature_dim"):
        children = list(module.features)
        blocks, current = [], []
        for child in children:  # a block ends at each ReLU (the tiny CNN's conv-BN-ReLU)
            current.append(child)
            if isinstance(child, nn.ReLU):
                blocks.append(current)
                current = []
        return blocks + ([current] if any(p for m in current for p in m.parameters()) else [])
    if hasattr(module, "encoder") and hasattr(module, "embedding") and hasattr(module.encoder, "layers"):
        # positions go with the embedding; the final norm with the last block (open_clip's text lock)
        blocks = [[layer] for layer in module.encoder.layers]
        blocks[-1].append(module.norm)
        return [[module.embedding], *blocks]
    return [[child] for child in module.children() if any(True for _ in child.parameters())]


def lock(module: nn.Module, unlocked: int = 0, argument: str = "unlocked_groups") -> list[nn.Module]:
    """Freeze ``module`` but for its last ``unlocked`` layer groups; returns the frozen part's
    normalisation layers (to keep in eval mode). ``unlocked`` larger than the tower is refused."""
    int_at_least(argument, unlocked, 0)
    groups = layer_groups(module)
    if unlocked > len(groups):
        raise ConfigError(argument, f"{argument} is {unlocked}, but the tower has {len(groups)} layer groups")
    module.requires_grad_(False)
    for group in groups[len(groups) - unlocked :]:
        for part in group:
            part.requires_grad_(True)
    frozen = [part for group in groups[: len(groups) - unlocked] for part in group]
    if isinstance(getattr(module, "position", None), nn.Parameter):  # the text transformer's: in the first group
        module.position.requires_grad_(unlocked == len(groups))
    return [m for part in frozen for m in getattr(part, "modules", tuple)() if isinstance(m, _NORMS)]


def keep_frozen_statistics(modules: list[nn.Module]) -> None:
    """Frozen towers and the frozen part's normalisation layers in eval mode: their statistics stay fixed."""
    for module in modules:
        module.eval()


def checkpoint_activations(image: nn.Module, text: nn.Module, image_frozen: bool, image_name: str) -> None:
    """Gradient checkpointing of the towers that allow it: the text transformer's blocks, a timm
    image tower (``set_grad_checkpointing``). A trained BatchNorm tower is refused: the recomputation
    in the backward pass would update its running statistics a second time."""
    if hasattr(image, "set_grad_checkpointing"):
        image.set_grad_checkpointing(True)
    else:
        refuse_trained_batchnorm(image, image_frozen, image_name, "grad_checkpointing")
    if hasattr(text, "set_grad_checkpointing"):  # a pretrained Hugging Face model
        text.set_grad_checkpointing(True)
    elif hasattr(text, "grad_checkpointing"):
        text.grad_checkpointing = True


def refuse_trained_batchnorm(image: nn.Module, image_frozen: bool, image_name: str, argument: str) -> None:
    """A trained BatchNorm image tower cannot be run twice per step (``grad_checkpointing``'s
    recomputation, ``accumulate_pairs``' second pass): its running statistics would be updated twice
    (and a micro-batch's statistics are not the batch's)."""
    if not image_frozen and any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in image.modules()):
        raise ConfigError(
            argument,
            f"{argument}: the {image_name} image tower has BatchNorm, whose statistics the recomputation "
            "would update twice; freeze it (freeze_image) or use a timm/ ViT tower",
        )
