"""The split path under DDP (2 gloo processes): each rank's samples get exactly the views one
process gives the same samples (the views depend on (seed, epoch, sample) alone)."""

from __future__ import annotations

import torch

from tests.distributed.gloo import run_on_ranks


def _views_by_sample(rank: int = 0) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
    from contrast.data import ContrastiveData

    data = ContrastiveData(dataset="shapes10", views="split", batch_size=4, train_subset=48)
    loader = data.train_dataloader()
    loader.sampler.set_epoch(1)  # a later epoch: indices epoch·N + i
    order = list(iter(loader.sampler))
    out, n = {}, 0
    for ((q, k), (pq, _)), _ in loader:
        for row in range(q.shape[0]):
            out[order[n]] = (torch.cat([q[row], k[row]]), pq[row])
            n += 1
    return out


def test_two_gloo_ranks_cut_the_views_one_process_cuts(tmp_path):
    ranks = run_on_ranks(_views_by_sample, 2, tmp_path)
    single = _views_by_sample()
    assert set(ranks[0]).isdisjoint(ranks[1]) and len(ranks[0]) + len(ranks[1]) == len(single)
    for share in ranks:
        for index, (views, params) in share.items():
            assert torch.equal(views, single[index][0]) and torch.equal(params, single[index][1]), index
