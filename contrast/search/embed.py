"""``contrast embed``: the embeddings of a whole collection, in shards that survive an interruption.

``OUT/images/00000.npy`` … (float16, (n, E), L2-normalised) and, beside each, ``00000.jsonl``: one
record a row (``id``, ``path`` or ``shard`` and ``key``, ``caption`` where there is one); the same
under ``OUT/texts/``; ``OUT/embed.json``: the model's fingerprint, the width, the sources. A shard
is ``shard_size`` consecutive items, written atomically (its ``.npy``, then its ``.jsonl``, which
marks it done); a rerun skips the shards that are done, so an interrupted run resumes by shard.
Under a DDP launcher (``torchrun``: ``RANK``, ``WORLD_SIZE``) rank r writes the shards ``s`` with
``s % world == r``: the shards, hence the output, do not depend on the number of ranks.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from contrast.search.collection import Collection, fingerprint, images_of, texts_of


def _atomic(path: Path, write) -> None:
    partial = path.with_name(path.name + f".{os.getpid()}.partial")
    write(partial)
    os.replace(partial, path)


def _done(folder: Path, shard: int, rows: int) -> bool:
    meta, array = folder / f"{shard:05d}.jsonl", folder / f"{shard:05d}.npy"
    if not (meta.is_file() and array.is_file()):
        return False
    try:
        return np.load(array, mmap_mode="r").shape[0] == rows == sum(1 for _ in meta.open())
    except (OSError, ValueError):
        return False


@torch.no_grad()
def embed_shards(model, collection: Collection, folder: Path, shard_size: int, batch_size: int, rank=0, world=1):
    """Write this rank's shards of ``collection`` into ``folder``; returns (shards written, skipped)."""
    folder.mkdir(parents=True, exist_ok=True)
    device = next(model.parameters()).device
    written = skipped = 0
    for shard in range(rank, (len(collection) + shard_size - 1) // shard_size, world):
        start, stop = shard * shard_size, min(len(collection), (shard + 1) * shard_size)
        if _done(folder, shard, stop - start):
            skipped += 1
            continue
        part = torch.utils.data.Subset(collection, range(start, stop))
        rows = []
        for items, _ in DataLoader(part, batch_size=batch_size, collate_fn=_collate):
            if collection.kind == "texts":
                vectors = model.embed_texts(model.tokenize(items).to(device))
            else:
                vectors = model.embed_images(items.to(device))
            rows.append(torch.nn.functional.normalize(vectors.float(), dim=1).half().cpu().numpy())
        array = np.concatenate(rows)  # (n, E) float16
        lines = "".join(json.dumps(collection.records[i], ensure_ascii=False) + "\n" for i in range(start, stop))
        _atomic(folder / f"{shard:05d}.npy", lambda p, a=array: _save(p, a))
        _atomic(folder / f"{shard:05d}.jsonl", lambda p, t=lines: p.write_text(t, encoding="utf-8"))  # marks it done
        written += 1
    return written, skipped


def _save(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as f:
        np.save(f, array)


def _collate(batch):
    items, ids = zip(*batch)
    return (list(items) if isinstance(items[0], str) else torch.stack(items)), torch.tensor(ids)


def embed(
    ckpt: str,
    out: str,
    images: str | None,
    texts: str | None,
    shard_size: int = 10000,
    batch_size: int = 256,
    image_size: int | None = None,
):
    """``contrast embed``: see the module doc. Returns the manifest."""
    from contrast.checkpoint import read_checkpoint
    from contrast.methods import CrossModal

    if images is None and texts is None:
        raise ValueError("contrast embed: give --images, --texts or both")
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    local = int(os.environ.get("LOCAL_RANK", 0))
    device = f"cuda:{local}" if torch.cuda.is_available() else "cpu"
    checkpoint = read_checkpoint(ckpt)
    model = CrossModal.from_checkpoint(checkpoint, map_location=device)
    target = Path(out)
    manifest = {
        "fingerprint": fingerprint(model),
        "checkpoint": str(ckpt),
        "dim": int(model.hparams.embed_dim),
        "image_size": image_size or trained_image_size(model, checkpoint),
    }
    existing = target / "embed.json"
    if existing.is_file():
        before = json.loads(existing.read_text())
        if before.get("fingerprint") != manifest["fingerprint"]:
            raise ValueError(
                f"--out {out}: holds the embeddings of another model (fingerprint {before.get('fingerprint')}, "
                f"this checkpoint's {manifest['fingerprint']}); choose another folder"
            )
    size = manifest["image_size"]
    sources = {}
    for kind, spec in (("images", images), ("texts", texts)):
        if spec is None:
            continue
        collection = images_of(spec, size) if kind == "images" else texts_of(spec)
        written, skipped = embed_shards(model, collection, target / kind, shard_size, batch_size, rank, world)
        sources[kind] = {"source": str(spec), "count": len(collection), "shard_size": shard_size}
        print(f"{kind}: {len(collection)} from {spec}: {written} shards written, {skipped} already done (rank {rank})")
    if rank == 0:
        previous = json.loads(existing.read_text()).get("sources", {}) if existing.is_file() else {}
        manifest["sources"] = {**previous, **sources}
        target.mkdir(parents=True, exist_ok=True)
        _atomic(existing, lambda p: p.write_text(json.dumps(manifest, indent=2)))
    return manifest


def trained_image_size(model, checkpoint: dict) -> int:
    """The side the image tower was trained at: open_clip's own, else the training data's, else 32."""
    if getattr(model, "_open_clip", None):
        return int(model._open_clip["facts"]["size"])
    return int(checkpoint.get("datamodule_hyper_parameters", {}).get("image_size") or 32)
