"""Writing a pack, ``contrast pack SRC DEST``: an image collection as a few large shards of JPEG bytes and an index.

Layout of a pack (``DEST``)::

    shard_00000.bin ...   JPEG files one after another (about ``shard_bytes`` each)
    index.npy             (N, 6) int64: shard, offset, size, height, width, label (-1: none)
    captions.jsonl        (pairs only) a caption a line, a JSON string, in index order
    meta.json             format version, classes, settings, source hash, counts: written last

The source is an ImageFolder tree (``SRC/<class>/<image>``), a flat folder of images (unlabelled), or a
list file of ``path[,label]`` lines (paths relative to the file; a label is a class id or a class name).
With ``captions``, a pack of image–caption pairs (``--data.dataset packed`` of
:class:`~contrast.data.PairedData` reads it): a caption per image from the ``.txt`` beside it ("txt",
img2dataset's layout) or from a CSV / TSV file (open_clip's columns); an image without one is refused,
an empty caption refused (or, with ``skip_corrupt``, the pair skipped and counted). Images are taken in
a fixed order (classes by name, files by name; a list file's own order), so the same source gives the
same pack, whatever the number of workers.

An image passes through byte for byte when it is a baseline RGB JPEG whose longest side is at most
``max_side``; otherwise (too large, progressive, CMYK, grey, PNG / BMP / TIFF / WebP) it is decoded,
its longest side capped at ``max_side`` and re-encoded as a baseline JPEG of ``quality`` (FFCV's
setting for ImageNet: 512 px, quality 90).

Interrupted packing resumes: a shard is written to ``.tmp``, then renamed with its part of the
index beside it (``shard_00000.idx.npy``), so the same command again keeps the finished shards and
goes on after them. ``meta.json`` is written last: a pack without it is no pack (a reader refuses
it), and a destination that holds a pack of another source or other settings is refused.
"""

from __future__ import annotations

import io
import json
import os
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from contrast.checkpoint import atomic_write, sha256
from contrast.data.pack.read import CAPTIONS, FORMAT_VERSION, INDEX, INDEX_COLUMNS, META
from contrast.data.pack.source import PackError, captions_hash, captions_of, list_source, source_hash
from contrast.data.pixels import decode_rgb

CHUNK = 64  # images per task of a worker


@dataclass(frozen=True)
class Settings:
    max_side: int = 512
    quality: int = 90
    shard_bytes: int = 2**30


# ---------------------------------------------------------------------- one image
def encode(path: Path, settings: Settings) -> tuple[bytes, int, int]:
    """(JPEG bytes, height, width): the file itself when it may pass, else re-encoded."""
    from PIL import Image

    data = path.read_bytes()
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            passes = (
                image.format == "JPEG"
                and image.mode == "RGB"
                and not image.info.get("progressive")
                and not image.info.get("progression")
                and max(width, height) <= settings.max_side
            )
            if passes:
                _check_jpeg(data)  # decoded once: a truncated or garbled JPEG stops here, not in training
                return data, height, width
        image = Image.fromarray(decode_rgb(data).permute(1, 2, 0).numpy())  # by value range, alpha over white
        scale = settings.max_side / max(width, height)
        if scale < 1:
            width, height = max(1, round(width * scale)), max(1, round(height * scale))
            image = image.resize((width, height), Image.Resampling.BICUBIC, reducing_gap=3.0)
        out = io.BytesIO()
        image.save(out, format="JPEG", quality=settings.quality, progressive=False, optimize=False)
        return out.getvalue(), height, width
    except Exception as error:  # PIL raises many types for damaged files
        raise PackError(f"could not read image {path}: {error}") from error


def _check_jpeg(data: bytes) -> None:
    """Decode a JPEG once with the decoder training uses. libjpeg reports damaged scan data
    ("Corrupt JPEG data: ...") as a warning on the C library's stderr and decodes on, grey blocks
    included: that stream is captured here and such a file is refused like an unreadable one."""
    import torch
    from torchvision.io import decode_jpeg

    with tempfile.TemporaryFile() as captured:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(captured.fileno(), 2)
        try:
            decode_jpeg(torch.frombuffer(bytearray(data), dtype=torch.uint8))
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        captured.seek(0)
        said = captured.read().decode(errors="replace")
    damaged = [line for line in said.splitlines() if "Corrupt JPEG data" in line or "Premature end" in line]
    if damaged:
        raise PackError(f"damaged JPEG data ({damaged[0].strip()})")


def _one_thread() -> None:
    """A pack worker decodes with torch: one intra-op thread, as DataLoader workers do (a forked
    child entering the OpenMP pool its parent started would wait for it forever)."""
    import torch

    torch.set_num_threads(1)


def _encode_chunk(task) -> list:
    paths, settings, skip_corrupt = task
    out = []
    for path in paths:
        try:
            out.append(encode(path, settings))
        except PackError:
            if not skip_corrupt:
                raise
            out.append(None)
    return out


# ---------------------------------------------------------------------- the pack
def pack(
    src: str | os.PathLike,
    dest: str | os.PathLike,
    *,
    settings: Settings = Settings(),
    workers: int = 0,
    skip_corrupt: bool = False,
    classes_file: str | os.PathLike | None = None,
    progress: bool = True,
    captions: str | None = None,
    csv_img_key: str = "filepath",
    csv_caption_key: str = "title",
    csv_separator: str = "\t",
) -> dict:
    """Pack ``src`` into ``dest`` (see the module doc); returns the metadata written. ``captions``:
    "txt" or a CSV / TSV file (its ``csv_*`` columns): a pack of image–caption pairs."""
    from tqdm.auto import tqdm

    samples, classes = list_source(src, classes_file)
    texts, empty = None, 0
    if captions is not None:
        texts = captions_of(samples, captions, csv_img_key, csv_caption_key, csv_separator)
        blank = [path for (path, _), text in zip(samples, texts) if not text]
        if blank and not skip_corrupt:
            raise PackError(
                f"--captions {captions}: {len(blank)} empty caption(s), e.g. of image {blank[0]}; "
                "fill them, or skip those pairs with --skip_corrupt"
            )
        empty = len(blank)
        kept = [i for i, text in enumerate(texts) if text]
        samples, texts = [samples[i] for i in kept], [texts[i] for i in kept]
    dest = Path(dest)
    identity = {
        "format_version": FORMAT_VERSION,
        "source_hash": source_hash(samples, classes),
        "classes": classes,
        "max_side": settings.max_side,
        "quality": settings.quality,
        "shard_bytes": settings.shard_bytes,
        "skip_corrupt": skip_corrupt,
    }
    if texts is not None:  # a pair pack: its captions are part of what it is
        identity["captions_hash"] = captions_hash(texts)
    done, rows = _resume(dest, identity)
    if done is None:  # a finished pack of this source and settings
        return json.loads((dest / META).read_text())
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "progress.json").write_text(json.dumps(identity, indent=2))
    start = int(rows[:, 6].max()) + 1 if len(rows) else 0  # source position after the finished shards
    shard, skipped = done, 0
    buffer, entries = bytearray(), []
    bar = tqdm(total=len(samples), initial=start, desc=f"packing {Path(src).name}", disable=not progress)
    chunks = [samples[i : i + CHUNK] for i in range(start, len(samples), CHUNK)]
    tasks = (([p for p, _ in chunk], settings, skip_corrupt) for chunk in chunks)
    pool = ProcessPoolExecutor(workers, initializer=_one_thread) if workers > 1 else None
    try:
        results = pool.map(_encode_chunk, tasks) if pool is not None else map(_encode_chunk, tasks)
        position = start
        for chunk, encoded in zip(chunks, results):
            for (_, label), item in zip(chunk, encoded):
                if item is None:
                    skipped += 1
                else:
                    data, height, width = item
                    entries.append((shard, len(buffer), len(data), height, width, label, position))
                    buffer += data
                position += 1
                if len(buffer) >= settings.shard_bytes:
                    _write_shard(dest, shard, buffer, entries)
                    shard, buffer, entries = shard + 1, bytearray(), []
            bar.update(len(chunk))
    finally:
        bar.close()
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    if entries:
        _write_shard(dest, shard, buffer, entries)
        shard += 1
    index = np.concatenate(
        [rows[:, :6]] + [np.load(dest / f"shard_{s:05d}.idx.npy")[:, :6] for s in range(done, shard)]
    )
    if len(index) == 0:
        raise PackError(f"SRC {src}: every image was unreadable ({skipped} skipped)")
    atomic_write(dest / INDEX, lambda f: np.save(f, index.astype(np.int64)))
    bound = {}
    if texts is not None:  # each packed image's caption, by its source position
        positions = np.concatenate(
            [rows[:, 6]] + [np.load(dest / f"shard_{s:05d}.idx.npy")[:, 6] for s in range(done, shard)]
        )
        lines = "".join(json.dumps(texts[int(p)], ensure_ascii=False) + "\n" for p in positions)
        atomic_write(dest / CAPTIONS, lambda f: f.write(lines.encode("utf-8")))
        bound = {"captions_sha256": sha256(dest / CAPTIONS), "empty_captions_skipped": empty}
    meta = (
        identity
        | bound
        | {
            "index_sha256": sha256(dest / INDEX),  # binds the index to these shards: checked at every open
            "images": int(len(index)),
            "skipped": skipped + start - len(rows),  # the source images before `start` not in the finished shards
            "shards": [
                {"name": f"shard_{s:05d}.bin", "bytes": (dest / f"shard_{s:05d}.bin").stat().st_size}
                for s in range(shard)
            ],
            "columns": list(INDEX_COLUMNS),
        }
    )
    atomic_write(dest / META, lambda f: f.write(json.dumps(meta, indent=2).encode()))  # last: the pack is done
    (dest / "progress.json").unlink(missing_ok=True)
    return meta


def _write_shard(dest: Path, shard: int, buffer: bytearray, entries: list) -> None:
    """The shard's bytes, then its part of the index: the index part's presence means 'finished'."""
    atomic_write(dest / f"shard_{shard:05d}.bin", lambda f: f.write(buffer))
    part = np.asarray(entries, dtype=np.int64).reshape(-1, 7)  # INDEX_COLUMNS + the source position
    atomic_write(dest / f"shard_{shard:05d}.idx.npy", lambda f: np.save(f, part))


def _resume(dest: Path, identity: dict) -> tuple[int | None, np.ndarray]:
    """(shards already finished, their index rows); (None, _) when the pack is complete."""
    empty = np.zeros((0, 7), dtype=np.int64)
    if not dest.exists():
        return 0, empty
    if not dest.is_dir():
        raise PackError(f"DEST {dest} is a file, not a folder")
    finished = (dest / "shard_00000.idx.npy").is_file()
    for name in (META, "progress.json"):
        if (dest / name).is_file():
            try:
                saved = json.loads((dest / name).read_text())
            except ValueError:
                raise PackError(f"DEST {dest}: {dest / name} is damaged (not JSON); delete DEST, pack again") from None
            differ = [k for k in identity if saved.get(k) != identity[k]]
            if differ and name == "progress.json" and not finished:
                break  # a pack stopped before its first shard (a corrupt file, Ctrl-C): nothing to keep
            if differ:
                raise PackError(
                    f"DEST {dest} holds a pack of another source or other settings (differs in {', '.join(differ)}); "
                    "choose another DEST, or delete it to pack again"
                )
            if name == META:
                return None, empty
    if not (dest / "progress.json").is_file() and any(dest.iterdir()):
        raise PackError(f"DEST {dest} is a folder that holds other files; pack into a new or empty folder")
    parts = []
    shard = 0
    while (dest / f"shard_{shard:05d}.idx.npy").is_file() and (dest / f"shard_{shard:05d}.bin").is_file():
        parts.append(np.load(dest / f"shard_{shard:05d}.idx.npy"))
        shard += 1
    for stale in dest.glob("*.tmp"):  # a shard cut off by the interruption: written again
        stale.unlink()
    return shard, np.concatenate(parts) if parts else empty
