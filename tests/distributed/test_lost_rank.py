"""A rank that stops answering is named by the ranks it left waiting (gloo, 2 CPU processes)."""

from __future__ import annotations

import contextlib
import io
import time

import pytest
import torch
import torch.distributed as dist

from contrast import distributed
from contrast.errors import report
from tests.distributed.gloo import run_on_ranks

HANG = 14.0  # seconds rank 1 hangs: past rank 0's collective timeout (1 s) and its 10 s of asking


def _one_rank_hangs(rank: int) -> dict:
    if rank == 1:  # stuck (a data loader, a deadlock): no collective, no answer
        time.sleep(HANG)
        return {}
    err = io.StringIO()
    start = time.monotonic()
    with contextlib.redirect_stderr(err):
        try:
            dist.all_reduce(torch.ones(3))
            code = None
        except Exception as error:  # noqa: BLE001 - what the command line does with it
            code = report(error, "fit")
    return {"code": code, "err": err.getvalue(), "seconds": time.monotonic() - start}


def _both_answer(rank: int) -> list[int] | None:
    return distributed.silent_ranks(wait=5.0)


@pytest.mark.slow  # 20 s: two processes, one of which stops answering
def test_the_rank_that_stopped_answering_is_named(tmp_path):
    """A hung rank stalled the others silently; now they stop after --collective_timeout and say
    which rank it was."""
    result = run_on_ranks(_one_rank_hangs, 2, tmp_path, timeout=1.0)[0]
    assert result["code"] == 1, result["err"]
    line = result["err"].strip()
    assert line.startswith("contrast fit: error: rank 0 lost the other ranks of the run: rank 1 stopped answering"), (
        line
    )
    assert len(line.splitlines()) == 1
    assert result["seconds"] < HANG  # the answer came from the timeout, not from rank 1 waking up


def test_ranks_that_all_answer_name_nobody(tmp_path):
    assert run_on_ranks(_both_answer, 2, tmp_path) == [[], []]


def test_one_process_has_no_one_to_ask():
    assert distributed.silent_ranks(wait=0.1) is None
