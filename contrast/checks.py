"""Argument checks shared by the whole package: one rule, one message per kind of value.

Each check returns the value and raises :class:`ConfigError` (a ``ValueError``) naming the
argument, the expected kind and the value given:
``batch_size must be an int >= 2 (contrastive losses need negatives), got True``.
A bool is never an int here (``True`` is not a batch size), whatever Python's ``isinstance`` says.
"""

from __future__ import annotations

import math


class ConfigError(ValueError):
    """A bad argument of a constructor or function: it carries the argument's name, so that the
    command line can say which option it came from (``--model.init_args.lr: lr must be ...``)."""

    def __init__(self, argument: str, message: str) -> None:
        super().__init__(message)
        self.argument = argument


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def int_at_least(name: str, value: object, minimum: int = 1, *, optional: bool = False, why: str = "") -> int | None:
    """An int >= ``minimum`` (a positive int by default); None too when ``optional``."""
    if optional and value is None:
        return None
    if _is_int(value) and value >= minimum:
        return value
    kind = "a positive int" if minimum == 1 else f"an int >= {minimum}"
    raise ConfigError(
        name, f"{name} must be {'None or ' if optional else ''}{kind}{f' ({why})' if why else ''}, got {value!r}"
    )


def finite_number(name: str, value: object, *, minimum: float | None = None, strictly: bool = False) -> float:
    """A finite int or float (not a bool), >= ``minimum`` (> with ``strictly``) when given."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        if minimum is None or value > minimum or (value == minimum and not strictly):
            return float(value)
    bound = "" if minimum is None else f" {'>' if strictly else '>='} {minimum:g}"
    raise ConfigError(name, f"{name} must be a finite number{bound}, got {value!r}")


def boolean(name: str, value: object) -> bool:
    """True or False (not 1, 0 or a string)."""
    if not isinstance(value, bool):
        raise ConfigError(name, f"{name} must be true or false, got {value!r}")
    return value


def one_of(name: str, value: object, choices: tuple) -> object:
    """One of ``choices``."""
    if value not in choices:
        raise ConfigError(name, f"{name} must be one of {choices}, got {value!r}")
    return value


def constructor_parameters(cls: type) -> dict:
    """The arguments of ``cls.__init__`` and of the bases it hands ``**kwargs`` on to, by name
    (``inspect.Parameter``; the nearest class's where two declare one): the one signature scanner
    of the package (which arguments a class takes, their defaults)."""
    import inspect

    found: dict = {}
    for klass in cls.__mro__:
        if "__init__" not in vars(klass) or klass is object:
            continue
        parameters = list(inspect.signature(klass.__init__).parameters.values())[1:]  # less self
        for parameter in parameters:
            if parameter.kind not in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
                found.setdefault(parameter.name, parameter)
        if not any(p.kind is p.VAR_KEYWORD for p in parameters):  # the chain of **kwargs ends here
            break
    return found
