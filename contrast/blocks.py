"""How many rows of a (rows × cols) similarity matrix one block holds: the one rule of the package.

The losses' chunked kernel, the retrieval metrics and the kNN search all compute similarities a
block of rows at a time, so that memory stays bounded by one block whatever the batch or the bank.
"""

from __future__ import annotations

from contrast.checks import int_at_least

BLOCK_ELEMENTS = 2**24  # similarities per block: 64 MiB in float32, 128 MiB in float64


def block_rows(
    rows: int, cols: int, chunk_size: int | None = None, *, whole_below: int = 0, block_elements: int = BLOCK_ELEMENTS
) -> int:
    """Rows per block: ``chunk_size`` when given (at most ``rows``); otherwise all rows in one block
    while rows × cols ≤ ``whole_below``, else as many rows as fit in ``block_elements`` (at least one)."""
    if chunk_size is not None:
        return min(int_at_least("chunk_size", chunk_size, why="or None: automatic"), max(1, rows))
    if rows * cols <= whole_below:
        return max(1, rows)
    return max(1, block_elements // max(1, cols))
