"""The one base of the losses' module forms: it holds τ and the options every loss function takes.

A module form is a thin wrapper: the hyper-parameters (and a learnable τ) live here, ``forward`` is
one call to the pure function with ``**self.options()``. τ is held one way everywhere: a float, or
a :class:`Temperature` module, which is registered as a submodule, so its ``log_tau`` is among the
loss's (and the method's) parameters and the optimizer learns it.
"""

from __future__ import annotations

from torch import Tensor, nn

from contrast.losses._validate import check_reduction, check_temperature
from contrast.losses.temperature import Temperature


class LossModule(nn.Module):
    """Options of every module form: ``temperature`` (a float τ > 0, or a learnable
    :class:`Temperature`), ``normalize`` and ``reduction`` as in the functions, ``gather_distributed``
    (default True): the functions' ``gather``, and ``validate`` (False in the training step: no
    finiteness check, hence no host sync)."""

    def __init__(
        self,
        temperature: float | Temperature,
        normalize: bool = True,
        reduction: str = "mean",
        gather_distributed: bool = True,
        validate: bool = True,
    ) -> None:
        super().__init__()
        if not isinstance(temperature, Temperature):
            temperature = float(check_temperature(temperature))
        check_reduction(reduction)
        self.temperature = temperature  # a Temperature is registered: learned with the model
        self.normalize, self.reduction = normalize, reduction
        self.gather_distributed, self.validate = gather_distributed, validate

    def tau(self) -> float | Tensor:
        """τ now: the float, or the learnable temperature's current (clamped) value."""
        return self.temperature() if isinstance(self.temperature, Temperature) else self.temperature

    def options(self) -> dict:
        """The keyword arguments of the function call."""
        return dict(
            normalize=self.normalize, reduction=self.reduction, validate=self.validate, gather=self.gather_distributed
        )

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}, normalize={self.normalize}"
