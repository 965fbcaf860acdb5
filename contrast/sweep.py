"""Temperature ablation: one pretraining per τ (same seed and data), then a report.

For each τ, ``run_sweep`` trains with ``--model.init_args.temperature τ`` and scores the encoder:
weighted-kNN top-1/top-5, linear-probe top-1, the final training loss, and, on the projections
of two augmented views of test images, the alignment and uniformity of Wang & Isola (2020) and
the mean softmax probability of the positive pair at that τ. For a two-tower (CrossModal) config
with the ``clip`` objective each τ is held fixed, ``learned`` adds a row where τ is learned from
the config's initial value, and the scores are retrieval both ways (R@1/5/10, median rank, mAP).
Each τ's result is written to ``<out>/tau_<τ>/result.json`` when its run finishes; a rerun of an
interrupted sweep skips the τ values already done and resumes an interrupted one from its last checkpoint. The report is
``sweep.csv``, ``sweep.md`` and ``sweep.png``.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from contrast.eval.features import extract_features
from contrast.eval.geometry import alignment, positive_probability, uniformity
from contrast.eval.knn import KNNEvaluator
from contrast.eval.linear import linear_probe

COLUMNS = ("tau", "knn_top1", "knn_top5", "linear_top1", "final_loss", "alignment", "uniformity", "positive_prob")
CROSSMODAL_COLUMNS = (
    "tau",
    "final_tau",
    "i2t/R@1",
    "i2t/R@5",
    "i2t/R@10",
    "t2i/R@1",
    "t2i/R@5",
    "t2i/R@10",
    "i2t/mAP",
    "t2i/mAP",
    "final_loss",
)
LEARNED = "learned"


def parse_taus(text: str) -> list[float | str]:
    """Temperatures from "0.05,0.1,learned" ("learned": a row with τ learned, two-tower configs only)."""
    taus: list[float | str] = []
    for part in (t.strip() for t in text.split(",")):
        if not part:
            continue
        if part == LEARNED:
            taus.append(LEARNED)
            continue
        try:
            taus.append(float(part))
        except ValueError as error:
            raise ValueError(f"--tau must be a comma-separated list of numbers (or 'learned'), got {text!r}") from error
    if not taus or any(t != LEARNED and not (t > 0 and t < float("inf")) for t in taus):
        raise ValueError(f"--tau needs temperatures > 0, got {text!r}")
    return taus


def is_crossmodal(config: str | os.PathLike, overrides: list[str] | None = None) -> bool:
    """Whether a fit config (with its overrides, ``--model CLASS`` last) trains a two-tower CrossModal model."""
    import yaml

    overrides = overrides or []
    chosen = [overrides[i + 1] for i, arg in enumerate(overrides[:-1]) if arg == "--model"]
    if chosen:
        return chosen[-1].endswith("CrossModal")
    content = yaml.safe_load(Path(config).read_text()) or {}
    model = content.get("model") or {}
    return isinstance(model, dict) and str(model.get("class_path", "")).endswith("CrossModal")


@torch.no_grad()
def score_crossmodal(model, data, temperature: float | str | None = None) -> dict[str, float]:
    from contrast.eval.crossmodal import retrieval_scores

    scores = retrieval_scores(model, data)
    return {"final_tau": float(model.tau())} | {k: v for k, v in scores.items() if k in CROSSMODAL_COLUMNS}


@torch.no_grad()
def score_run(model, data, temperature: float, knn_k: int = 200, knn_temperature: float = 0.1) -> dict[str, float]:
    """Evaluate a trained method on its data module (features on the model's device)."""
    from contrast.views import BatchedTwoViews

    device = model.device
    train = extract_features(model, data.eval_dataloader(True), device)  # model(x): backbone features
    test = extract_features(model, data.eval_dataloader(False), device)
    knn = KNNEvaluator(k=min(knn_k, len(train[0])), temperature=knn_temperature).fit(*train).score(*test)
    probe = linear_probe(*train, *test)
    split = data.split(False)
    n = min(len(split), 1024)
    images = torch.stack([split[i][0] for i in range(n)]).to(device)
    q, k = BatchedTwoViews((data.recipe_q, data.recipe_k))(images, torch.Generator().manual_seed(0))
    model.eval()
    zq, zk = model.projector(model.encode(q)), model.projector(model.encode(k))
    model.train()
    return {
        "knn_top1": knn["top1"],
        "knn_top5": knn["top5"],
        "linear_top1": probe.top1,
        "alignment": alignment(zq, zk),
        "uniformity": uniformity(zq),
        "positive_prob": positive_probability(zq, zk, temperature),
    }


@dataclass(frozen=True)
class SweepKind:
    """What a sweep of one kind of model varies, scores and reports; ``run_sweep`` is the same for all."""

    settings: Callable[[float | str], list[str]]  # the fit options of one τ
    score: Callable[..., dict[str, float]]  # (trained model, its data, τ) -> the row's scores
    report: Callable[[list[dict], Path], None]  # (rows sorted by τ, out) -> sweep.csv, .md, .png
    learned: bool  # whether a row with a learned τ ("learned") is possible


def write_report(rows: list[dict], out: Path) -> None:
    """The report of either kind (two-tower rows carry ``final_tau``)."""
    rows = sorted(rows, key=lambda r: (r["tau"] == LEARNED, 0.0 if r["tau"] == LEARNED else r["tau"]))
    (TWO_TOWERS if "final_tau" in rows[0] else IMAGES).report(rows, out)


def run_sweep(
    config: str, taus: list[float | str], out: str | os.PathLike, overrides: list[str] | None = None
) -> list[dict]:
    """Pretrain once per τ under ``out/tau_<τ>/`` (logs and checkpoints there), score, report."""
    from contrast.train import lightning_cli

    kind = TWO_TOWERS if is_crossmodal(config, overrides) else IMAGES
    if LEARNED in taus and not kind.learned:
        raise ValueError("--tau learned: a learned τ is swept for the clip objective of a CrossModal config only")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    # What makes a finished τ this sweep's: the config's text and the overrides (τ aside)
    settings = {"config": Path(config).read_text(), "overrides": list(overrides or [])}
    rows = []
    for tau in taus:
        name = LEARNED if tau == LEARNED else f"{tau:g}"
        run_dir = out / f"tau_{name}"
        result_file = run_dir / "result.json"
        if result_file.is_file():
            row = json.loads(result_file.read_text())
            if row.get("settings") != settings:  # a finished τ of another sweep is no result of this one
                raise ValueError(
                    f"--out {out}: {run_dir.name} holds a finished run with other settings (config or overrides "
                    "changed); choose another --out, or delete that folder to train this τ again"
                )
            print(f"τ = {name}: finished earlier, skipping ({run_dir.name}/{result_file.name} in --out)", flush=True)
            rows.append(row)
            continue
        print(f"τ = {name}: pretraining", flush=True)
        cli = lightning_cli(
            [
                "fit",
                "--config",
                config,
                *(overrides or []),
                *kind.settings(tau),
                "--run_dir",
                str(run_dir),
                # an interrupted run of this τ resumes where it stopped
                *(["--ckpt_path", "last"] if (run_dir / "checkpoints" / "last.ckpt").is_file() else []),
            ]
        )
        metrics = cli.trainer.callback_metrics
        row = {"tau": tau, "final_loss": float(metrics["train/loss"]) if "train/loss" in metrics else float("nan")}
        row |= kind.score(cli.model, cli.datamodule, tau)
        row["settings"] = settings
        run_dir.mkdir(parents=True, exist_ok=True)
        tmp = result_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(row, indent=2))
        os.replace(tmp, result_file)  # written last and atomically: its presence means "done"
        rows.append(row)
    write_report(rows, out)
    return rows


def write_image_report(rows: list[dict], out: Path) -> None:
    with open(out / "sweep.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows({c: r[c] for c in COLUMNS} for r in rows)
    header = ["τ", "kNN top-1", "kNN top-5", "linear top-1", "final loss", "alignment ↓", "uniformity ↓", "p(positive)"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" ---: " for _ in header) + "|"]
    for r in rows:
        lines.append(
            f"| {r['tau']:g} | {r['knn_top1']:.2f} | {r['knn_top5']:.2f} | {r['linear_top1']:.2f} | "
            f"{r['final_loss']:.4f} | {r['alignment']:.4f} | {r['uniformity']:.4f} | {r['positive_prob']:.4f} |"
        )
    (out / "sweep.md").write_text("\n".join(lines) + "\n")
    plot(rows, out / "sweep.png")


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    taus = [r["tau"] for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for key, label in (("knn_top1", "kNN top-1"), ("linear_top1", "linear top-1")):
        left.plot(taus, [r[key] for r in rows], marker="o", label=label)
    left.set(xscale="log", xlabel="temperature τ", ylabel="accuracy (%)", title="Accuracy vs τ")
    left.legend()
    right.plot(taus, [r["alignment"] for r in rows], marker="o", label="alignment")
    right.plot(taus, [r["uniformity"] for r in rows], marker="s", label="uniformity")
    right.set(xscale="log", xlabel="temperature τ", title="Alignment and uniformity (lower is better)")
    right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_crossmodal_report(rows: list[dict], out: Path) -> None:
    with open(out / "sweep.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CROSSMODAL_COLUMNS)
        writer.writeheader()
        writer.writerows({c: r.get(c) for c in CROSSMODAL_COLUMNS} for r in rows)
    header = [
        "τ",
        "final τ",
        *(
            c.replace("i2t/", "image→text ").replace("t2i/", "text→image ").replace("_", " ")
            for c in CROSSMODAL_COLUMNS[2:]
        ),
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" ---: " for _ in header) + "|"]
    for r in rows:
        tau = r["tau"] if r["tau"] == LEARNED else f"{r['tau']:g}"
        cells = [tau, f"{r['final_tau']:.4f}"]
        cells += [f"{r[c]:.2f}" if c in r else "–" for c in CROSSMODAL_COLUMNS[2:-1]] + [f"{r['final_loss']:.4f}"]
        lines.append("| " + " | ".join(cells) + " |")
    (out / "sweep.md").write_text("\n".join(lines) + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fixed = [r for r in rows if r["tau"] != LEARNED]
    fig, ax = plt.subplots(figsize=(6, 4))
    for key, label in (("i2t/R@1", "image→text R@1"), ("t2i/R@1", "text→image R@1")):
        line = ax.plot([r["tau"] for r in fixed], [r[key] for r in fixed], marker="o", label=f"{label}, fixed τ")
        for r in rows:
            if r["tau"] == LEARNED:
                ax.scatter(
                    [r["final_tau"]],
                    [r[key]],
                    marker="*",
                    s=150,
                    color=line[0].get_color(),
                    label=f"{label}, learned τ",
                )
    ax.set(xscale="log", xlabel="temperature τ (learned: its final value)", ylabel="recall (%)", title="Retrieval vs τ")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "sweep.png", dpi=120)
    plt.close(fig)


def _two_tower_settings(tau: float | str) -> list[str]:
    if tau == LEARNED:  # learned from the config's initial τ
        return ["--model.init_args.learn_temperature", "true"]
    return ["--model.init_args.learn_temperature", "false", "--model.init_args.temperature", str(tau)]


IMAGES = SweepKind(
    settings=lambda tau: ["--model.init_args.temperature", str(tau)],
    score=score_run,
    report=write_image_report,
    learned=False,
)
TWO_TOWERS = SweepKind(
    settings=_two_tower_settings, score=score_crossmodal, report=write_crossmodal_report, learned=True
)
