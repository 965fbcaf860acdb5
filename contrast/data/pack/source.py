"""What a pack is made of: the images of an ImageFolder tree, a flat folder or a list file of
``path[,label]`` lines, in pack order, their captions where the pack holds image–caption pairs, and the
fingerprint that binds a pack to its source."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from contrast.data.files import ImageFiles, _images, class_folders


class PackError(ValueError):
    """A source or destination that cannot be packed as asked, named in the message."""


def list_source(src: str | os.PathLike, classes_file: str | os.PathLike | None = None) -> tuple[list, list[str]]:
    """([(path, label)], classes) of an ImageFolder tree, a flat folder or a list file, in pack order.
    ``classes_file``: class names, one a line (e.g. the ImageNet-100 list): only those classes."""
    src = Path(src)
    wanted = None
    if classes_file is not None:
        wanted = [line.strip() for line in _text(Path(classes_file), "--classes").splitlines() if line.strip()]
        if not wanted:
            raise PackError(f"--classes {classes_file}: no class names in it")
        twice = sorted({name for name in wanted if wanted.count(name) > 1})
        if twice:
            raise PackError(f"--classes {classes_file}: class name(s) listed twice: {twice[:5]}")
    if src.is_file():
        if src.suffix.lower() in ImageFiles.EXTENSIONS:
            raise PackError(f"SRC {src} is an image; give the folder that holds the images, or a list file")
        samples, classes = _list_file(src)
    elif src.is_dir():
        folders = class_folders(src)
        if folders:
            classes = [d.name for d in folders]
            samples = [(path, label) for label, d in enumerate(folders) for path in _images(d)]
        else:
            classes, samples = [], [(path, -1) for path in _images(src)]
    else:
        raise PackError(f"SRC {src}: no such folder or list file")
    if wanted is not None:
        missing = sorted(set(wanted) - set(classes))
        if missing:
            raise PackError(f"--classes {classes_file}: {len(missing)} class(es) not in {src}, e.g. {missing[:3]}")
        keep = {classes.index(name): i for i, name in enumerate(wanted)}
        samples = [(path, keep[label]) for path, label in samples if label in keep]
        classes = list(wanted)
    if not samples:
        raise PackError(f"SRC {src}: no images ({', '.join(ImageFiles.EXTENSIONS)}) found")
    return samples, classes


def _text(path: Path, what: str) -> str:
    try:
        return path.read_text()
    except UnicodeDecodeError:
        raise PackError(f"{what} {path} is not a text file (expected one 'path[,label]' a line)") from None


def _list_file(path: Path) -> tuple[list, list[str]]:
    """A list file: ``path`` or ``path,label`` lines (the label a class id >= 0 or a class name), all
    lines with a label or none; blank lines and ``#`` comments skipped."""
    samples, names, unlabelled, labelled = [], [], None, None
    for number, line in enumerate(_text(path, "SRC").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        where = f"{path}, line {number}"
        fields = [field.strip() for field in line.split(",")]
        if len(fields) > 2:
            raise PackError(f"{where}: {len(fields)} columns; expected 'path' or 'path,label'")
        file = Path(fields[0]) if Path(fields[0]).is_absolute() else path.parent / fields[0]
        if file.is_dir():
            raise PackError(f"{where}: {file} is a folder; a list file names one image a line")
        if not file.is_file():
            raise PackError(f"{where}: {file} does not exist")
        label = fields[1] if len(fields) == 2 else ""
        if not label:
            unlabelled = unlabelled or number
            samples.append((file, -1))
        elif label.lstrip("-").isdigit():
            if int(label) < 0:
                raise PackError(f"{where}: label {label}; a label is a class id >= 0 or a class name")
            samples.append((file, int(label)))
        else:
            names.append(label) if label not in names else None
            samples.append((file, label))
        if label:
            labelled = labelled or number
    if unlabelled and labelled:
        raise PackError(f"{path}: line {unlabelled} has no label but line {labelled} has one; label every line or none")
    if names:  # class names: numbered in sorted order
        classes = sorted(names)
        if any(isinstance(label, int) and label >= 0 for _, label in samples):
            raise PackError(f"{path}: mixes class ids and class names as labels")
        samples = [(file, classes.index(label) if isinstance(label, str) else label) for file, label in samples]
        return samples, classes
    top = max((label for _, label in samples), default=-1)
    return samples, [str(i) for i in range(top + 1)]


def source_hash(samples: list, classes: list[str]) -> str:
    """What identifies a source: its files in order (path, size in bytes and modification time in
    nanoseconds), their labels and the classes. Not the content: hashing a 140 GB ImageNet tree on
    every run would cost more than packing it. A file rewritten in place (the same name and size,
    other pixels) has a new modification time, so a changed source is never taken for the packed
    one; a copy that does not keep modification times (``cp`` without ``-p``) counts as another."""
    digest = hashlib.sha256()
    for name in classes:
        digest.update(f"class {name}\n".encode())
    for path, label in samples:
        stat = path.stat() if path.is_file() else None
        size, mtime = (stat.st_size, stat.st_mtime_ns) if stat is not None else (-1, -1)
        digest.update(f"{path.parent.name}/{path.name} {size} {mtime} {label}\n".encode())
    return digest.hexdigest()


def captions_of(
    samples: list, spec: str, img_key: str = "filepath", caption_key: str = "title", separator: str = "\t"
) -> list[str]:
    """The caption of each sample, in order: ``spec`` "txt" reads the ``.txt`` of the same name beside
    each image (img2dataset's layout); otherwise ``spec`` is a CSV / TSV file (open_clip's layout) whose
    ``img_key`` column names the images (paths relative to the file) and ``caption_key`` their captions.
    An image without a caption is refused, naming it; an empty caption is returned empty (refused or
    skipped by the caller)."""
    if spec == "txt":
        captions = []
        for path, _ in samples:
            beside = path.with_suffix(".txt")
            if not beside.is_file():
                raise PackError(f"--captions txt: image {path} has no caption file {beside.name} beside it")
            captions.append(beside.read_text(encoding="utf-8").strip())
        return captions
    from contrast.data.shards import csv_rows

    table = Path(spec)
    if not table.is_file():
        raise PackError(f"--captions {spec}: expected 'txt' or a CSV / TSV file of image paths and captions")
    try:
        rows = csv_rows(table, img_key, caption_key, separator, "--csv_img_key / --csv_caption_key / --csv_separator")
    except ValueError as error:
        raise PackError(f"--captions: {error}") from None
    by_path = {os.path.realpath(Path(name) if Path(name).is_absolute() else table.parent / name): c for name, c in rows}
    captions = []
    for path, _ in samples:
        caption = by_path.get(os.path.realpath(path))
        if caption is None:
            raise PackError(f"--captions {spec}: image {path} has no row (column {img_key!r})")
        captions.append(caption)
    return captions


def captions_hash(captions: list[str]) -> str:
    """What identifies a pack's captions: their text, in order."""
    digest = hashlib.sha256()
    for caption in captions:
        digest.update(caption.encode() + b"\n")
    return digest.hexdigest()
