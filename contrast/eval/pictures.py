"""Pictures a researcher looks at: nearest neighbours by the encoder's features, and a 2-D map.

* :func:`neighbour_grid`: a handful of test images, each followed by its ``k`` nearest training
  images by cosine similarity of the features (the kNN evaluation's own search), each neighbour's
  class written above it, in green when it is the query's class, red otherwise;
* :func:`embedding_map`: the test features in 2-D, coloured by class: UMAP (``umap-learn``) when
  installed, else t-SNE (scikit-learn) when installed, else PCA.

Both write PNGs atomically (a temporary file renamed), from a checkpoint by ``contrast pictures``
or every N epochs from :class:`contrast.eval.KNNCallback` (``pictures_every_n_epochs``).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import Tensor

MAPS = ("auto", "umap", "tsne", "pca")


def query_indices(n_test: int, queries: int) -> Tensor:
    """``queries`` test indices spread evenly over the test split (datasets stored class by class
    show several classes)."""
    return torch.linspace(0, n_test - 1, min(queries, n_test)).round().long()


def nearest(train_features: Tensor, test_features: Tensor, queries: Tensor, k: int) -> Tensor:
    """(Q, k) indices of the training images nearest to each query by cosine similarity of the
    features, most similar first (ties by the lower index): the kNN evaluation's exact search."""
    from contrast.eval.knn import KNNEvaluator

    labels = torch.zeros(train_features.shape[0], dtype=torch.long)  # the search does not use them
    knn = KNNEvaluator(k=k, backend="torch").fit(train_features, labels)
    return knn.neighbours(test_features[queries])[1][:, :k]


def _display(image: Tensor, mean, std) -> Tensor:
    """(H, W, C) float in [0, 1] for imshow from a normalised (C, H, W) image."""
    mean = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)
    std = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)
    x = (image.float() * std + mean).clamp(0, 1)
    return x.expand(3, -1, -1).permute(1, 2, 0) if x.shape[0] == 1 else x.permute(1, 2, 0)


def _save(figure, path: Path) -> Path:
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial.png")
    figure.savefig(partial, dpi=100, bbox_inches="tight")
    plt.close(figure)
    os.replace(partial, path)
    return path


def neighbour_grid(
    path: str | os.PathLike,
    test_images: list[Tensor],
    test_labels: Tensor,
    neighbour_images: list[list[Tensor]],
    neighbour_labels: Tensor,
    classes: list[str],
    mean,
    std,
    title: str = "",
) -> Path:
    """A PNG: row i is query i (normalised (C, H, W) tensors, as the evaluation sees them) and its
    neighbours, each neighbour titled by its class (green: the query's class)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, cols = len(test_images), 1 + len(neighbour_images[0])
    figure, axes = plt.subplots(rows, cols, figsize=(1.3 * cols, 1.45 * rows), squeeze=False)
    for i in range(rows):
        axes[i][0].imshow(_display(test_images[i], mean, std))
        axes[i][0].set_title(f"query: {classes[int(test_labels[i])]}", fontsize=7, fontweight="bold")
        for j, image in enumerate(neighbour_images[i], start=1):
            label = int(neighbour_labels[i, j - 1])
            axes[i][j].imshow(_display(image, mean, std))
            same = label == int(test_labels[i])
            axes[i][j].set_title(classes[label], fontsize=7, color="green" if same else "red")
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        figure.suptitle(title, fontsize=8)
    return _save(figure, Path(path))


def project(features: Tensor, method: str = "auto", seed: int = 0) -> tuple[Tensor, str]:
    """(N, 2) coordinates of L2-normalised ``features`` and the method used."""
    if method not in MAPS:
        raise ValueError(f"map must be one of {MAPS}, got {method!r}")
    x = torch.nn.functional.normalize(features.float(), dim=1)
    if method in ("auto", "umap"):
        try:
            import umap

            coords = umap.UMAP(n_components=2, random_state=seed).fit_transform(x.numpy())
            return torch.as_tensor(coords), "UMAP"
        except ImportError:
            if method == "umap":
                raise ValueError("map 'umap' needs umap-learn (pip install umap-learn)") from None
    perplexity = min(30.0, (x.shape[0] - 1) / 3)  # below the number of points, as t-SNE needs
    if method == "tsne" and perplexity < 1:
        raise ValueError(f"map 'tsne' needs at least 4 points, got {x.shape[0]}; use --map pca")
    if method in ("auto", "tsne") and perplexity >= 1:
        try:
            from sklearn.manifold import TSNE

            coords = TSNE(n_components=2, random_state=seed, init="pca", perplexity=perplexity).fit_transform(x.numpy())
            return torch.as_tensor(coords), "t-SNE"
        except ImportError:
            if method == "tsne":
                raise ValueError("map 'tsne' needs scikit-learn (pip install scikit-learn)") from None
    centred = x - x.mean(0)
    _, _, v = torch.linalg.svd(centred, full_matrices=False)
    coords = centred @ v[:2].T  # (N, min(2, N))
    return torch.nn.functional.pad(coords, (0, 2 - coords.shape[1])), "PCA"


def embedding_map(
    path: str | os.PathLike, features, labels: Tensor, classes: list[str], method: str = "auto", title=""
) -> tuple[Path, str]:
    """A PNG of the features in 2-D coloured by class; returns (path, the method used).
    ``features``: (N, D), or the (coordinates, method) :func:`project` returned for them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    coords, used = features if isinstance(features, tuple) else project(features, method)
    figure, ax = plt.subplots(figsize=(6, 5))
    colours = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
    for c in range(len(classes)):
        mask = labels == c
        if mask.any():
            ax.scatter(coords[mask, 0], coords[mask, 1], s=4, color=colours(c % colours.N), label=classes[c])
    if len(classes) <= 20:
        ax.legend(markerscale=3, fontsize=7, loc="best")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(f"{title}{' — ' if title else ''}{used} of {coords.shape[0]} test features", fontsize=9)
    return _save(figure, Path(path)), used


def draw(
    out: str | os.PathLike,
    train: tuple[Tensor, Tensor],
    test: tuple[Tensor, Tensor],
    train_images,
    test_images,
    classes: list[str],
    mean,
    std,
    *,
    queries: int = 8,
    k: int = 8,
    method: str = "auto",
    points: int = 5000,
    prefix: str = "",
    title: str = "",
) -> dict[str, Path]:
    """Both pictures into ``out``: ``<prefix>neighbours.png`` and ``<prefix>map.png``.
    ``train`` / ``test``: (features, labels); ``*_images``: datasets of (normalised image, label)."""
    (train_x, train_y), (test_x, test_y) = train, test
    shown = query_indices(test_x.shape[0], points)
    coords = project(test_x[shown], method)  # first: a map that cannot be drawn stops before any file is written
    chosen = query_indices(test_x.shape[0], queries)
    k = min(k, train_x.shape[0])
    found = nearest(train_x, test_x, chosen, k)
    grid = neighbour_grid(
        Path(out) / f"{prefix}neighbours.png",
        [test_images[int(i)][0] for i in chosen],
        test_y[chosen],
        [[train_images[int(j)][0] for j in row] for row in found],
        train_y[found],
        classes,
        mean,
        std,
        title=title,
    )
    drawn, used = embedding_map(Path(out) / f"{prefix}map.png", coords, test_y[shown], classes, title=title)
    return {"neighbours": grid, "map": drawn, "queries": len(chosen), "k": k, "points": len(shown), "method": used}


def draw_from_data(out: str | os.PathLike, data, train: tuple[Tensor, Tensor], test: tuple[Tensor, Tensor], **kwargs):
    """:func:`draw` for features of a data module's evaluation splits (train: the bank, test: the
    queries): the images, class names and normalisation come from ``data``; ``kwargs`` go to :func:`draw`."""
    split = data.eval_split(True)
    classes = list(getattr(split, "classes", None) or [str(c) for c in range(int(train[1].max()) + 1)])
    train_images, test_images = data.eval_dataloader(True).dataset, data.eval_dataloader(False).dataset
    recipe = data.recipe_q
    return draw(out, train, test, train_images, test_images, classes, recipe.mean, recipe.std, **kwargs)
