"""Published weights (torchvision's torch hub files, timm's Hugging Face hub files), read safely.

Both hubs cache a file and hand it back on the next call without checking it again, and torch's
``load_state_dict_from_url`` unpickles with ``weights_only=False``: a file planted in the cache
under the published name runs code on load. Here every named-model path goes through
:func:`verified_file`, which checks the file's SHA-256 against the published one (the prefix in a
torch hub file name, ``<name>-<sha256 prefix>.pth``; the blob name of a Hugging Face cache entry,
which is the file's SHA-256), and :func:`read_weights`, which reads safetensors, or a torch file with
``weights_only=True``: a tensor archive loads, a pickle that would run code is refused.
"""

from __future__ import annotations

import os
import re
import urllib.parse
from pathlib import Path

import torch

from contrast.checkpoint import CheckpointError, sha256

# torch hub's naming convention for published files: <name>-<first hex digits of the SHA-256>.<ext>
_HASH_IN_NAME = re.compile(r"-([a-f0-9]{8,64})\.")


def verified_file(path: Path, expected: str | None, what: str) -> Path:
    """``path`` when its SHA-256 starts with ``expected`` (a prefix or the whole digest); a
    :class:`CheckpointError` naming the file otherwise. ``expected=None``: nothing published to check."""
    if expected is not None and not sha256(path).startswith(expected):
        raise CheckpointError(
            f"weights: {what}: {path} is not the published file (its SHA-256 does not start with {expected}); "
            "it was not loaded: delete it and download the file again"
        )
    return path


def read_weights(path: Path, what: str, name: str | None = None) -> dict[str, torch.Tensor]:
    """A state dict from a ``.safetensors`` file or a torch file read with ``weights_only=True``
    (``name``: the file's published name, where ``path`` is a cache blob without one)."""
    try:
        if (name or path.name).endswith(".safetensors"):
            from safetensors.torch import load_file

            return load_file(str(path), device="cpu")
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - a refused pickle, a damaged file
        first = str(error).strip().splitlines()[0][:200] if str(error).strip() else ""
        raise CheckpointError(
            f"weights: {what}: {path} is not a plain weights file and was not loaded ({type(error).__name__}: {first})"
        ) from error
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"weights: {what}: {path} holds no state dict of tensors")
    return state


def hub_weights(url: str, what: str) -> dict[str, torch.Tensor]:
    """A torch hub file (torchvision's published weights): from the cache, else downloaded into it
    (``torch.hub.download_url_to_file`` writes a temporary file and renames it when the hash holds),
    then verified and read as above."""
    filename = os.path.basename(urllib.parse.urlparse(url).path)
    folder = Path(torch.hub.get_dir()) / "checkpoints"
    path = folder / filename
    match = _HASH_IN_NAME.search(filename)
    expected = match.group(1) if match else None
    if not path.is_file():
        try:
            folder.mkdir(parents=True, exist_ok=True)
            torch.hub.download_url_to_file(url, str(path), hash_prefix=expected, progress=False)
        except Exception as error:  # noqa: BLE001 - offline, or a damaged download
            check = f"checked against its published SHA-256 prefix {expected} and " if expected else ""
            raise CheckpointError(
                f"weights: {what} could not be downloaded ({type(error).__name__}: {str(error)[:200]}); offline, put "
                f"{filename} from {url} in {folder} (the torch hub cache; $TORCH_HOME moves it): it is {check}"
                "read without unpickling code"
            ) from error
    return read_weights(verified_file(path, expected, what), what)


def hf_weights(repo_id: str, filename: str | None, what: str) -> dict[str, torch.Tensor]:
    """A Hugging Face hub model file (timm's published weights): ``filename``, else
    ``model.safetensors`` and then ``pytorch_model.bin``, from the cache (``$HF_HUB_OFFLINE=1``:
    the cache only), verified against the blob's SHA-256 and read as above."""
    from huggingface_hub import hf_hub_download

    names = [filename] if filename else ["model.safetensors", "pytorch_model.bin"]
    errors = []
    for name in names:
        try:
            path = Path(hf_hub_download(repo_id, name))
        except Exception as error:  # noqa: BLE001 - offline, or the repository has no such file
            errors.append(f"{name}: {type(error).__name__}")
            continue
        blob = path.resolve().name  # LFS files are stored under their SHA-256
        expected = blob if re.fullmatch(r"[a-f0-9]{64}", blob) else None
        return read_weights(verified_file(path.resolve(), expected, what), what, name)
    raise CheckpointError(
        f"weights: {what} could not be loaded from the Hugging Face hub repository {repo_id} ({'; '.join(errors)}); "
        "offline, fill the Hugging Face cache ($HF_HOME) where there is a network, then set HF_HUB_OFFLINE=1: "
        "the file is checked against its SHA-256 and read without unpickling code"
    )
