"""LARS (You et al. 2017, "Large Batch Training of Convolutional Networks"), as used by SimCLR and
MoCo v3 for large batches: SGD with momentum where each parameter's step is scaled by the trust
ratio η·‖w‖ / ‖∇w + λw‖. Parameter groups with ``lars_exclude=True`` (biases, norms) take plain
SGD steps without weight decay or adaptation, as in SimCLR.

The step is multi-tensor (``torch._foreach_*``): a handful of kernels per parameter group, not
about eight per parameter, so that on a GPU the host does not fall behind the device."""

from __future__ import annotations

import torch
from torch.optim import Optimizer

from contrast.checks import finite_number


class LARS(Optimizer):
    def __init__(
        self, params, lr: float, momentum: float = 0.9, weight_decay: float = 0.0, trust_coefficient: float = 0.001
    ):
        finite_number("lr", lr, minimum=0, strictly=True)
        defaults = dict(
            lr=lr, momentum=momentum, weight_decay=weight_decay, trust_coefficient=trust_coefficient, lars_exclude=False
        )
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            grads = [p.grad for p in params]
            if not group["lars_exclude"]:
                grads = torch._foreach_add(grads, params, alpha=group["weight_decay"])  # ∇w + λw
                param_norms = torch.stack(torch._foreach_norm(params))  # (P,) ‖w‖
                grad_norms = torch.stack(torch._foreach_norm(grads))  # (P,) ‖∇w + λw‖
                trust = torch.where(
                    (param_norms > 0) & (grad_norms > 0),
                    group["trust_coefficient"] * param_norms / grad_norms,
                    torch.ones_like(param_norms),
                )  # (P,) η·‖w‖ / ‖∇w + λw‖, 1 where a norm is 0
                torch._foreach_mul_(grads, list(trust.unbind(0)))
            buffers = []
            for p in params:
                state = self.state[p]
                if "momentum_buffer" not in state:  # the first step: the buffer becomes the update itself
                    state["momentum_buffer"] = torch.zeros_like(p)
                buffers.append(state["momentum_buffer"])
            torch._foreach_mul_(buffers, group["momentum"])
            torch._foreach_add_(buffers, grads)
            torch._foreach_add_(params, buffers, alpha=-group["lr"])
        return loss
