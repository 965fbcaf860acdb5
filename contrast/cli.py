"""The ``contrast`` command."""

from __future__ import annotations

import sys

USAGE = """usage: contrast <command> [options]

The training commands (fit, validate, export, knn, probe, sweep) are not available yet.
The losses are usable from Python:

    from contrast.losses import info_nce, nt_xent
"""


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    print(USAGE, end="")
    return 0 if not argv or argv[0] in ("-h", "--help") else 2


if __name__ == "__main__":
    raise SystemExit(main())
