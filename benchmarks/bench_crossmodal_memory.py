"""Peak memory of one two-tower training step on the CPU: open_clip's ViT-B-32 image tower and its
12-layer text tower (random weights, open_clip's own configuration) at batch 64, as it is, with
``grad_checkpointing``, and with ``accumulate_pairs: 8`` on a batch of 8 × 64 (GradCache: the loss over
all 512 pairs). Each setting runs alone in a fresh process; the peak is the process's maximum resident
memory over the first step (forward, backward, AdamW's step), and the step's own share is that peak less
the resident memory once the model, the optimizer and the batch are built.

A second step is then measured as a GPU's allocator counts (``torch.cuda.max_memory_allocated``): the
bytes of live tensors only (not the interpreter and its libraries), at steady state (AdamW's moments
allocated by the first step, its gradients freed): the weights, the moments and the batch, plus the
peak of what the step allocates, read from PyTorch's memory profiler (every allocation and free on the
CPU, in order).

    python benchmarks/bench_crossmodal_memory.py
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import append_results, current_rss_bytes, markdown_table  # noqa: E402

MODEL = "ViT-B-32"
SETTINGS = {
    "batch 64": {"batch": 64},
    "batch 64, grad_checkpointing": {"batch": 64, "grad_checkpointing": True},
    "batch 8 × 64, accumulate_pairs 8": {"batch": 512, "accumulate_pairs": 8},
}


def one_step(name: str) -> dict:
    import torch

    from contrast.methods import CrossModal

    setting = dict(SETTINGS[name])
    batch = setting.pop("batch")
    torch.manual_seed(0)
    model = CrossModal(
        backbone=f"open_clip/{MODEL}", text_encoder=f"open_clip/{MODEL}", vocabulary={"open_clip": MODEL}, **setting
    ).train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    images = torch.randint(0, 256, (batch, 3, 224, 224), dtype=torch.uint8)
    texts = model.tokenize([f"a photo of thing number {i}" for i in range(batch)])
    labels = torch.zeros(batch, dtype=torch.long)
    built = current_rss_bytes()
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # self.log without a trainer
        loss = model.training_step((images, texts, labels), 0)
    loss.backward()
    optimizer.step()
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    first = {"built": built, "peak": peak, "seconds": seconds, "loss": float(loss)}

    optimizer.zero_grad(set_to_none=True)
    del loss
    live = [*model.parameters(), *model.buffers(), images, texts, labels]
    live += [t for state in optimizer.state.values() for t in state.values() if torch.is_tensor(t)]
    storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in live}
    resident = sum(storages.values())  # weights, buffers, AdamW's moments, the batch (each storage once)
    with (
        torch.profiler.profile(
            activities=[torch.profiler.ProfilerActivity.CPU], profile_memory=True, record_shapes=True, with_stack=True
        ) as profiler,
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore")
        model.training_step((images, texts, labels), 1).backward()
        optimizer.step()
    return {**first, "tensors": resident + allocated_peak(profiler), "resident_tensors": resident}


def allocated_peak(profiler) -> int:
    """The most bytes allocated at once, above what was live at the start, over the profiled region."""
    from torch.profiler._memory_profiler import Action

    change = {Action.CREATE: 1, Action.DESTROY: -1}  # PREEXISTING and INCREMENT_VERSION allocate nothing
    running = peak = 0
    for _, action, _, size in sorted(profiler._memory_profile().timeline, key=lambda row: row[0]):
        running += change.get(action, 0) * size
        peak = max(peak, running)
    return peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--setting", choices=list(SETTINGS), help=argparse.SUPPRESS)  # one run, in a child
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()
    if args.setting:
        print(json.dumps(one_step(args.setting)))
        return
    results = {}
    for name in SETTINGS:
        child = subprocess.run(
            [sys.executable, __file__, "--setting", name], capture_output=True, text=True, check=True
        )
        results[name] = json.loads(child.stdout.strip().splitlines()[-1])
        print(name, results[name], flush=True)
    base = results["batch 64"]
    rows = []
    for name, r in results.items():
        step = r["peak"] - r["built"]
        rows.append(
            [
                name,
                f"{r['peak'] / 2**30:.2f}",
                f"{step / 2**30:.2f}",
                f"{r['peak'] / base['peak']:.0%}",
                f"{step / (base['peak'] - base['built']):.0%}",
                f"{r['tensors'] / 2**30:.2f}",
                f"{r['tensors'] / base['tensors']:.0%}",
                f"{r['seconds']:.1f}",
                f"{r['loss']:.4f}",
            ]
        )
    header = [
        "setting",
        "peak GiB",
        "step's own GiB",
        "peak vs batch 64",
        "step's own vs batch 64",
        "2nd step, tensors GiB",
        "tensors vs batch 64",
        "step s",
        "loss",
    ]
    table = markdown_table(header, rows)
    print(table)
    if not args.no_append:
        notes = (
            f"open_clip/{MODEL} as both towers (random weights), AdamW, float32, CPU, one process per setting. "
            "Peak: the process's maximum resident memory over the first step; the step's own: the peak less the "
            "resident memory with the model, the optimizer and the batch built (weights 151 M parameters, 0.6 GB). "
            "2nd step, tensors: the peak of live tensor bytes over a second step, as a GPU's allocator counts them "
            f"(the weights, AdamW's moments and the batch, {base['resident_tensors'] / 2**30:.2f} GiB at batch 64, "
            "plus the most the step allocates at once, from PyTorch's memory profiler)."
        )
        append_results("Memory of one two-tower step: grad_checkpointing and accumulate_pairs", "cpu", table, notes)


if __name__ == "__main__":
    main()
