"""Caption synthesis: words and templates that describe a Shapes-10 scene or a CIFAR-10 class.

* :func:`describe`: one caption of a coloured Shapes-10 scene from its (shape, colour, size,
  position) codes, in random synonyms and one of six templates; :func:`scene_key` names the
  attribute combination (a caption is a hit for every image with the same key).
* :func:`describe_relation`: one caption of a scene of one or two objects
  (:func:`~contrast.data.shapes.generate_relation_scenes`): their attributes, their relation ("left
  of", "above", …, in either order) and their count; :func:`relation_key` names what a caption can
  tell apart.
* :func:`class_caption`: "a photo of a {class}"-style captions from templates and class synonyms.
"""

from __future__ import annotations

import torch
from torch import Tensor

from contrast.data.shapes import CLASSES, COLOURS, LAYOUTS, POSITIONS, SIZES

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


PLURALS = {"cross": "crosses", "x": "x's", "plus": "pluses", "plus sign": "plus signs", "rhombus": "rhombuses"}
RELATIONS = {  # layout -> (A first, B first) templates; {a} and {b} are "size colour shape" phrases
    "side by side": (
        ("a {a} left of a {b}", "a {a} to the left of a {b}", "on the left a {a}, on the right a {b}"),
        ("a {b} right of a {a}", "a {b} to the right of a {a}", "a {b} with a {a} on its left"),
    ),
    "stacked": (
        ("a {a} above a {b}", "a {a} on top of a {b}", "at the top a {a}, at the bottom a {b}"),
        ("a {b} below a {a}", "a {b} under a {a}", "a {b} with a {a} above it"),
    ),
}
SINGLE = ("a single {a}", "one {a} alone", "just one {a} in the middle")
TWINS = {  # two objects alike: a count, the layout, one phrase in the plural
    "side by side": ("two {p} side by side", "a pair of {p} next to each other", "two {p}, left and right"),
    "stacked": ("two {p} one above the other", "a pair of {p} stacked", "two {p}, top and bottom"),
}


def relation_key(attributes: Tensor) -> Tensor:
    """(n,) one code per (n, 7) relation-scene code row (:func:`~contrast.data.shapes.generate_relation_scenes`):
    scenes with the same key are described by the same captions."""
    sizes = (len(CLASSES), len(COLOURS), len(SIZES)) * 2 + (len(LAYOUTS),)
    key = torch.zeros(attributes.shape[0], dtype=torch.long)
    for column, size in enumerate(sizes):
        key = key * size + attributes[:, column]
    return key


def describe_relation(attributes: Tensor | tuple[int, ...], generator: torch.Generator) -> str:
    """One caption of a relation scene from its 7 codes, in random words and template: "a small red
    disc left of a large blue ring", "a large blue ring right of a small red disc", "two red discs
    side by side", "a single tiny green wedge"."""
    codes = [int(a) for a in attributes]
    layout = LAYOUTS[codes[6]]

    def pick(options):
        return options[int(torch.randint(len(options), (1,), generator=generator))]

    def phrase(shape: int, colour: int, size: int, plural: bool = False) -> str:
        word = pick(SHAPE_WORDS[CLASSES[shape]])
        word = PLURALS.get(word, word + "s") if plural else word
        return f"{pick(SIZE_WORDS[SIZES[size]])} {pick(COLOUR_WORDS[list(COLOURS)[colour]])} {word}"

    if layout == "single":
        return pick(SINGLE).format(a=phrase(*codes[:3]))
    if codes[:3] == codes[3:6]:
        return pick(TWINS[layout]).format(p=phrase(*codes[:3], plural=True))
    order = int(torch.randint(2, (1,), generator=generator))  # name A first or B first
    return pick(RELATIONS[layout][order]).format(a=phrase(*codes[:3]), b=phrase(*codes[3:6]))


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
