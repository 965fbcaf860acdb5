"""Packs: an image collection as a few large shards of JPEG bytes, an index and its metadata;
the writer (``contrast pack``) and the reader side by side."""

from contrast.data.pack.read import INDEX_COLUMNS, PackedImages
from contrast.data.pack.source import PackError
from contrast.data.pack.write import Settings, pack

__all__ = ["INDEX_COLUMNS", "PackError", "PackedImages", "Settings", "pack"]
