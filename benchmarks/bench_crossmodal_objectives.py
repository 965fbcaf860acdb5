"""The objectives and the temperature on Shapes-10 relation scenes (``configs/crossmodal_relations.yaml``:
generated, no download), each over several seeds, side by side in one run.

Every run is the config as written (tiny CNN + 2-layer transformer text tower, 8 epochs, batch 128,
AdamW 3e-3) with one change: the objective (``clip``, ``siglip``, ``triplet``, ``acmr``) or, for
``clip``, τ learned from 0.07 or held fixed. Scores on the 1,000 test scenes and their 2,000
captions: R@1 / R@5 both ways (a caption is a hit for every scene it describes) and the mean of the
six R@K, as mean ± standard deviation over the seeds (the seed sets the towers' initialisation and
the pairing order; the scenes are the same).

    python benchmarks/bench_crossmodal_objectives.py                 # 8 settings × 3 seeds, about 30 min on 2 cores
    python benchmarks/bench_crossmodal_objectives.py --seeds 0 --only clip,siglip --no-append
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import append_results, markdown_table, quiet_trainer  # noqa: E402

CONFIG = Path(__file__).resolve().parents[1] / "configs/crossmodal_relations.yaml"
SETTINGS = {  # name -> the change to the config's model arguments
    "clip": {},
    "clip-fixed": {"learn_temperature": False},
    "clip-fixed-0.2": {"learn_temperature": False, "temperature": 0.2},
    "siglip": {"objectives": {"siglip": 1.0}},
    "triplet": {"objectives": {"triplet": 1.0}},
    "triplet-all": {"objectives": {"triplet": 1.0}, "mining": "all"},
    "acmr": {"objectives": {"acmr": 1.0}},
    "acmr-all": {"objectives": {"acmr": 1.0}, "mining": "all"},
}
LABELS = {
    "clip": "clip, τ learned from 0.07",
    "clip-fixed": "clip, τ fixed 0.07",
    "clip-fixed-0.2": "clip, τ fixed 0.2",
    "siglip": "siglip (t′, b learned)",
    "triplet": "triplet, hardest negative, margin 0.2",
    "triplet-all": "triplet, every negative (VSE0), margin 0.2",
    "acmr": "acmr (triplets + labels + adversary), hardest negative",
    "acmr-all": "acmr, every negative",
}


def run(change: dict, seed: int, epochs: int | None) -> dict:
    import lightning as L

    from contrast.data import PairedData
    from contrast.eval.crossmodal import retrieval_scores
    from contrast.methods import CrossModal

    config = yaml.safe_load(CONFIG.read_text())
    L.seed_everything(seed, verbose=False)
    data = PairedData(**{**config["data"]["init_args"], "seed": seed})
    model = CrossModal(**{**config["model"]["init_args"], **change}, **data.facts())
    start = time.perf_counter()
    quiet_trainer(False, "32", max_epochs=epochs or config["trainer"]["max_epochs"]).fit(model, data)
    seconds = time.perf_counter() - start
    scores = retrieval_scores(model.eval(), data)
    keys = [f"{d}/R@{k}" for d in ("t2i", "i2t") for k in (1, 5, 10)]
    return {**scores, "rsum": sum(scores[k] for k in keys) / len(keys), "seconds": seconds}


def spread(values: list[float]) -> str:
    return f"{statistics.mean(values):.1f} ± {statistics.stdev(values):.1f}" if len(values) > 1 else f"{values[0]:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--only", default=",".join(SETTINGS), help=f"a comma list of {tuple(SETTINGS)}")
    parser.add_argument("--epochs", type=int, help="instead of the config's (a rehearsal)")
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    names = args.only.split(",")
    unknown = sorted(set(names) - set(SETTINGS))
    if unknown:
        raise SystemExit(f"--only: unknown settings {unknown}; choose from {tuple(SETTINGS)}")
    results = {name: [] for name in names}
    for seed in seeds:  # seeds outermost: a stopped run still has every setting's first seeds
        for name in names:
            results[name].append(run(SETTINGS[name], seed, args.epochs))
            r = results[name][-1]
            print(
                f"{name} seed {seed}: t2i R@1 {r['t2i/R@1']:.1f} i2t R@1 {r['i2t/R@1']:.1f} ({r['seconds']:.0f} s)",
                flush=True,
            )
    rows = [
        [
            LABELS[name],
            spread([r["t2i/R@1"] for r in runs]),
            spread([r["i2t/R@1"] for r in runs]),
            spread([r["t2i/R@5"] for r in runs]),
            spread([r["i2t/R@5"] for r in runs]),
            spread([r["rsum"] for r in runs]),
            f"{statistics.mean(r['seconds'] for r in runs):.0f}",
        ]
        for name, runs in results.items()
    ]
    header = ["objective", "text→image R@1", "image→text R@1", "t→i R@5", "i→t R@5", "mean R@K", "train s"]
    table = markdown_table(header, rows)
    print(table)
    if not args.no_append:
        config = yaml.safe_load(CONFIG.read_text())
        epochs = args.epochs or config["trainer"]["max_epochs"]
        notes = (
            f"configs/crossmodal_relations.yaml ({config['data']['init_args']['train_size']:,} training scenes, "
            f"{epochs} epochs), one change a row; mean ± standard deviation over seeds {seeds}. Test: 1,000 scenes, "
            "2 captions each; a caption is a hit for every scene with its key (same objects, layout and order)."
        )
        append_results("Cross-modal objectives and τ on Shapes-10 relation scenes", "cpu", table, notes)


if __name__ == "__main__":
    main()
