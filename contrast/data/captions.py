"""Caption synthesis: words and templates that describe a Shapes-10 scene or a CIFAR-10 class.

* :func:`describe`: one caption of a coloured Shapes-10 scene from its (shape, colour, size,
  position) codes, in random synonyms and one of six templates; :func:`scene_key` names the
  attribute combination (a caption is a hit for every image with the same key).
* :func:`class_caption`: "a photo of a {class}"-style captions from templates and class synonyms.
"""

from __future__ import annotations

import torch
from torch import Tensor

from contrast.data.shapes import CLASSES, COLOURS, POSITIONS, SIZES

SHAPE_WORDS = {
    "disc": ("disc", "filled circle", "dot"),
    "square": ("square", "filled square", "block"),
    "diamond": ("diamond", "rhombus"),
    "triangle": ("triangle", "wedge"),
    "plus": ("plus", "plus sign"),
    "cross": ("cross", "x", "saltire"),
    "ring": ("ring", "hoop", "circle outline"),
    "frame": ("frame", "square outline", "hollow square"),
    "horizontal_ellipse": ("wide ellipse", "horizontal oval", "flat oval"),
    "vertical_ellipse": ("tall ellipse", "vertical oval", "upright oval"),
}
COLOUR_WORDS = {
    "red": ("red", "crimson", "scarlet"),
    "green": ("green", "emerald"),
    "blue": ("blue", "azure", "cobalt"),
    "yellow": ("yellow", "golden", "lemon"),
    "white": ("white", "pale", "snowy"),
    "purple": ("purple", "violet", "lilac"),
}
SIZE_WORDS = {"small": ("small", "tiny", "little"), "large": ("large", "big", "huge")}
POSITION_WORDS = {
    "top left": ("top left", "upper left"),
    "top right": ("top right", "upper right"),
    "bottom left": ("bottom left", "lower left"),
    "bottom right": ("bottom right", "lower right"),
}
TEMPLATES = (
    "a {size} {colour} {shape} in the {position}",
    "{position}: a {colour} {shape}, {size}",
    "there is a {size} {shape} coloured {colour} at the {position} of the picture",
    "{colour} {shape} ({size}) {position} corner",
    "in the {position} corner you can see a {size} {colour} {shape}",
    "the picture shows a {colour} {shape} of {size} size, {position}",
)


def scene_key(attributes: Tensor) -> Tensor:
    """(n,) one code per attribute combination of (n, 4) (shape, colour, size, position) codes."""
    sizes = (len(CLASSES), len(COLOURS), len(SIZES), len(POSITIONS))
    key = torch.zeros(attributes.shape[0], dtype=torch.long)
    for column, size in enumerate(sizes):
        key = key * size + attributes[:, column]
    return key


def describe(attributes: Tensor | tuple[int, ...], generator: torch.Generator) -> str:
    """One caption of a scene with (shape, colour, size, position) codes, in random words and template."""
    shape, colour, size, position = (int(a) for a in attributes)

    def pick(options):
        return options[int(torch.randint(len(options), (1,), generator=generator))]

    return pick(TEMPLATES).format(
        shape=pick(SHAPE_WORDS[CLASSES[shape]]),
        colour=pick(COLOUR_WORDS[list(COLOURS)[colour]]),
        size=pick(SIZE_WORDS[SIZES[size]]),
        position=pick(POSITION_WORDS[POSITIONS[position]]),
    )


CIFAR_WORDS = {
    "airplane": ("airplane", "plane", "aircraft", "jet"),
    "automobile": ("car", "automobile", "sedan"),
    "bird": ("bird", "sparrow", "songbird"),
    "cat": ("cat", "kitten", "house cat"),
    "deer": ("deer", "stag", "doe"),
    "dog": ("dog", "puppy", "hound"),
    "frog": ("frog", "toad"),
    "horse": ("horse", "pony", "stallion"),
    "ship": ("ship", "boat", "vessel"),
    "truck": ("truck", "lorry", "pickup truck"),
}
CIFAR_TEMPLATES = (
    "a photo of a {}",
    "a blurry photo of the {}",
    "a small picture of a {}",
    "a low resolution image of a {}",
    "a close-up photo of the {}",
    "there is a {} in this picture",
    "a {} seen from afar",
)


def class_caption(class_name: str, generator: torch.Generator) -> str:
    words = CIFAR_WORDS.get(class_name, (class_name.replace("_", " "),))
    template = CIFAR_TEMPLATES[int(torch.randint(len(CIFAR_TEMPLATES), (1,), generator=generator))]
    return template.format(words[int(torch.randint(len(words), (1,), generator=generator))])
