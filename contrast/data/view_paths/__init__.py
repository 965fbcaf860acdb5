"""View paths: where and how the training images become their views (the protocol: :class:`ViewPath`)."""

from __future__ import annotations

from contrast.checks import ConfigError, one_of
from contrast.data.view_paths.base import ViewPath
from contrast.data.view_paths.batched import BatchedPath
from contrast.data.view_paths.cpu import CPUPath
from contrast.data.view_paths.split import SplitPath
from contrast.views.recipes import Views

# name -> path (the data module's ``views``). A new view path is one file and one line here.
VIEW_PATHS: dict[str, type[ViewPath]] = {
    "cpu": CPUPath,
    "batched": BatchedPath,
    "split": SplitPath,
}


def view_path(name: str, views: Views, seed: int, *, decode: str = "cpu", cache: str = "none") -> ViewPath:
    """The path ``name`` of :data:`VIEW_PATHS` for this list of views; an option the path does not
    offer is refused naming the option and the paths that offer it."""
    one_of("views", name, tuple(VIEW_PATHS))
    for option, value, offered in (("decode", decode, "decodes"), ("cache", cache, "caches")):
        able = tuple(other for other, path in VIEW_PATHS.items() if value in getattr(path, offered))
        if not able:
            one_of(option, value, tuple(dict.fromkeys(v for p in VIEW_PATHS.values() for v in getattr(p, offered))))
        if name not in able:
            raise ConfigError(option, f'{option}="{value}" needs views="{" or ".join(able)}", not "{name}"')
    return VIEW_PATHS[name](views, seed, decode=decode, cache=cache)


__all__ = ["VIEW_PATHS", "ViewPath", "view_path"]
