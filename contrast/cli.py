"""The ``contrast`` command: parse the command line and dispatch, nothing else.

Errors a user can fix (a bad value, an unknown option, missing data, a file that is not a
checkpoint, a full disk) are printed as one short message with exit code 2 (1 for a full disk);
a run stopped by SIGINT / SIGTERM exits with 130 / 143 after writing its checkpoint.
"""

from __future__ import annotations

import argparse
import os
import sys

LIGHTNING_COMMANDS = {
    "fit": "pretrain (LightningCLI: --config FILE, every option overridable, --ckpt_path last resumes)",
    "validate": "online-probe accuracy of a checkpoint on the test split (--config FILE --ckpt_path CKPT)",
}
EPILOG = """examples:
  contrast fit --config configs/quickstart.yaml
  contrast fit --config configs/quickstart.yaml --ckpt_path last        # resume the newest run
  contrast fit --config configs/simclr_cifar10.yaml --run_dir runs/simclr --ckpt_path last
  contrast knn --ckpt runs/lightning_logs/version_0/checkpoints/last.ckpt
  contrast export --ckpt last.ckpt --out exported/
  contrast sweep --config configs/quickstart.yaml --tau 0.1,0.2,0.5 --out sweep/
  contrast fit --config configs/crossmodal_relations.yaml --run_dir runs/crossmodal   # images <-> captions
  contrast retrieve --ckpt runs/crossmodal/checkpoints/last.ckpt
  contrast pictures --ckpt last.ckpt --out pictures/      # nearest neighbours, 2-D map
  contrast pack photos/ packed/photos --max_side 512        # then --data.dataset packed --data.root packed
  contrast pack pairs/train packed/train --captions txt     # image-caption pairs: PairedData(dataset="packed")
each command has its own --help (contrast fit --help)"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="contrast",
        description="Self-supervised contrastive pretraining and evaluation.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, help_text in LIGHTNING_COMMANDS.items():
        commands.add_parser(name, help=help_text, add_help=False)
    commands.add_parser("test", help="not supported: use knn or probe on a checkpoint", add_help=False)

    export = commands.add_parser(
        "export",
        help="write a checkpoint's backbone as a plain state_dict + how to build it (a two-tower checkpoint: both "
        "towers as model.safetensors + config.json)",
    )
    export.add_argument("--ckpt", required=True, help="a checkpoint written by contrast fit")
    export.add_argument("--out", required=True, help="output folder for backbone.pt and backbone.json")
    export.add_argument(
        "--recipe", help="the recipe the backbone was pretrained with, for a checkpoint that records no normalisation"
    )

    for name, help_text in (("knn", "weighted kNN accuracy of a checkpoint"), ("probe", "linear probe accuracy")):
        command = commands.add_parser(name, help=help_text)
        command.add_argument("--ckpt", required=True, help="a checkpoint written by contrast fit")
        command.add_argument("--dataset", default=None, help="dataset name (default: the checkpoint's)")
        command.add_argument(
            "--root", default=None, help="data folder (default: the checkpoint's / $CONTRAST_DATA_DIR)"
        )
        command.add_argument("--batch-size", type=int, default=512)
        if name == "knn":
            command.add_argument("--k", type=int, default=200)
            command.add_argument("--temperature", type=float, default=0.1, help="τ of the vote weights (0.1: CIFAR)")
            command.add_argument("--weighting", default="weighted", choices=["weighted", "majority"])
            command.add_argument("--backend", default="auto", choices=["auto", "faiss", "torch"])
        else:
            command.add_argument(
                "--mode",
                default="lbfgs",
                choices=["lbfgs", "sgd"],
                help="lbfgs: full-batch L-BFGS in float64, weight decay chosen on a held-out tenth (small sets); "
                "sgd: the feature mode of linear evaluation, mini-batch SGD on features extracted once (any size)",
            )
            command.add_argument(
                "--storage",
                default="memory",
                choices=["memory", "disk"],
                help="--mode sgd: the features in float16 in memory, or in .npy files under --features_dir",
            )
            command.add_argument("--features_dir", default=None, help="--storage disk: where the feature files go")
            command.add_argument("--epochs", type=int, default=100, help="--mode sgd: epochs over the features")
            command.add_argument("--lr", type=float, default=0.1, help="--mode sgd: peak learning rate (cosine)")
            command.add_argument("--sgd_batch_size", type=int, default=256, help="--mode sgd: batch of the SGD steps")
            command.add_argument(
                "--state",
                default=None,
                help="--mode sgd: a file the head and its optimizer are saved to after every epoch; the same command "
                "again continues from it",
            )
            command.add_argument(
                "--no_head_norm", action="store_true", help="--mode sgd: no BatchNorm in front of the linear layer"
            )

    pictures = commands.add_parser(
        "pictures", help="nearest-neighbour grid and 2-D map of a checkpoint's features (PNG files)"
    )
    pictures.add_argument("--ckpt", required=True, help="a checkpoint written by contrast fit")
    pictures.add_argument("--out", required=True, help="folder for neighbours.png and map.png")
    pictures.add_argument("--dataset", default=None, help="dataset name (default: the checkpoint's)")
    pictures.add_argument("--root", default=None, help="data folder (default: the checkpoint's / $CONTRAST_DATA_DIR)")
    pictures.add_argument("--batch-size", type=int, default=512)
    pictures.add_argument("--queries", type=int, default=8, help="test images in the grid")
    pictures.add_argument("--k", type=int, default=8, help="nearest training images per test image")
    pictures.add_argument(
        "--map", default="auto", choices=["auto", "umap", "tsne", "pca"], help="auto: UMAP, t-SNE, PCA"
    )
    pictures.add_argument("--points", type=int, default=5000, help="test features drawn in the map")

    retrieve = commands.add_parser(
        "retrieve", help="cross-modal retrieval (R@K, median rank, mAP) of a two-tower checkpoint"
    )
    retrieve.add_argument("--ckpt", required=True, help="a checkpoint written by contrast fit with CrossModal")
    retrieve.add_argument("--root", default=None, help="data folder (default: the checkpoint's / $CONTRAST_DATA_DIR)")
    retrieve.add_argument("--batch-size", type=int, default=512)
    retrieve.add_argument("--json", default=None, help="also write the figures to this JSON file")

    zeroshot = commands.add_parser(
        "zeroshot", help="zero-shot classification of a two-tower checkpoint (class names x prompt templates)"
    )
    zeroshot.add_argument("--ckpt", required=True, help="a checkpoint written by contrast fit with CrossModal")
    zeroshot.add_argument("--dataset", required=True, help="an image source of its test split: cifar10, imagefolder, …")
    zeroshot.add_argument("--root", default=None, help="data folder (default: $CONTRAST_DATA_DIR)")
    zeroshot.add_argument("--image_size", type=int, default=None, help="side the image tower sees (the checkpoint's)")
    zeroshot.add_argument("--templates", default=None, help="a JSON file of templates, CLIP_benchmark's format")
    zeroshot.add_argument(
        "--templates_key", default=None, help="its entry (default: cifar10 for CIFAR-10 sources, else imagenet1k)"
    )
    zeroshot.add_argument("--classnames", default=None, help="a file of class names, one a line (default: the data's)")
    zeroshot.add_argument("--batch-size", type=int, default=512)

    embed = commands.add_parser(
        "embed", help="embeddings of a whole collection (images and/or captions) in resumable float16 shards"
    )
    embed.add_argument("--ckpt", required=True, help="a checkpoint written by contrast fit with CrossModal")
    embed.add_argument("--images", default=None, help="an image folder, a pack, tar shards or a CSV file")
    embed.add_argument("--texts", default=None, help="a text file (a caption a line), tar shards or a CSV file")
    embed.add_argument("--out", required=True, help="the folder (a rerun resumes by shard)")
    embed.add_argument("--shard_size", type=int, default=10000, help="items a shard")
    embed.add_argument("--batch-size", type=int, default=256)
    embed.add_argument("--image_size", type=int, default=None, help="side the image tower sees (the checkpoint's)")

    index = commands.add_parser("index", help="a FAISS index over contrast embed's folder, tuned to a query time")
    index.add_argument("dir", help="the folder contrast embed wrote")
    index.add_argument("--max_memory", default="4GB", help="memory budget of the index, e.g. 4GB or 512MB")
    index.add_argument("--max_query_ms", type=float, default=10.0, help="median query time target (ms)")
    index.add_argument("--out", default=None, help="where to write the index (default: DIR/index)")
    index.add_argument("--train_only", action="store_true", help="in parts, step 1: the trained, empty IVF index")
    index.add_argument("--part", default=None, help="in parts, step 2: K/N, add the K-th of N shard groups")
    index.add_argument("--merge", type=int, default=None, help="in parts, step 3: merge the N parts on disk")

    serve = commands.add_parser("serve", help="a search service and page over an embedded, indexed folder")
    serve.add_argument("dir", help="the folder contrast embed and contrast index wrote")
    serve.add_argument("--ckpt", required=True, help="the checkpoint that embedded it")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--index", default=None, help="the index folder (default: DIR/index)")

    pack = commands.add_parser(
        "pack", help="pack an image collection into shards of JPEG bytes + an index (--data.dataset packed)"
    )
    pack.add_argument("src", help="an ImageFolder tree, a flat folder of images, or a list file of path[,label] lines")
    pack.add_argument("dest", help="the pack's folder (the same command again finishes an interrupted pack)")
    pack.add_argument("--max_side", type=int, default=512, help="cap on the longest side (larger images are resized)")
    pack.add_argument("--quality", type=int, default=90, help="JPEG quality of re-encoded images")
    pack.add_argument("--shard_bytes", type=int, default=2**30, help="bytes per shard (about)")
    pack.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes that encode")
    pack.add_argument("--skip_corrupt", action="store_true", help="skip (and count) unreadable images")
    pack.add_argument("--classes", default=None, help="a file of class names, one a line: pack only those classes")
    pack.add_argument(
        "--captions",
        default=None,
        help="image–caption pairs: 'txt' (a .txt beside each image) or a CSV / TSV file of image paths and captions",
    )
    pack.add_argument("--csv_img_key", default="filepath", help="--captions CSV: the column of image paths")
    pack.add_argument("--csv_caption_key", default="title", help="--captions CSV: the column of captions")
    pack.add_argument("--csv_separator", default="\t", help="--captions CSV: the separator (a tab, as open_clip)")

    sweep = commands.add_parser("sweep", help="temperature ablation: one pretraining per τ, then a report")
    sweep.add_argument("--config", required=True, help="a fit config, e.g. configs/quickstart.yaml")
    sweep.add_argument(
        "--tau",
        required=True,
        help="comma-separated temperatures, e.g. 0.05,0.1,0.2,0.5,1.0; for a CrossModal config also 'learned' "
        "(τ learned from the config's initial value)",
    )
    sweep.add_argument("--out", default="sweep", help="output folder: runs, logs and report (reruns skip finished τ)")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    if not argv or argv[0] in ("-h", "--help"):
        parser.print_help()
        return 0
    command = argv[0]
    from contrast.commands import COMMANDS, run_lightning
    from contrast.errors import report

    if command in LIGHTNING_COMMANDS:
        return run_lightning(argv)
    if command == "test":
        print(
            "contrast test: not supported (a method has no test step); score a checkpoint with "
            "`contrast knn --ckpt ...` or `contrast probe --ckpt ...`",
            file=sys.stderr,
        )
        return 2
    if command == "sweep":
        args, overrides = parser.parse_known_args(argv)  # the rest are fit overrides (--trainer.max_epochs 5)
    else:
        args, overrides = parser.parse_args(argv), []
    try:
        return COMMANDS[command](args, overrides)
    except KeyboardInterrupt:  # Ctrl-C: what was finished is kept (pack shards, probe epochs, sweep runs)
        print(f"\ncontrast {command}: interrupted; {RESUME.get(command, 'nothing was written')}", file=sys.stderr)
        return 130
    except Exception as error:  # noqa: BLE001 - reported, or re-raised when it is no user error
        return report(error, command, tuple(vars(args)))


# What an interrupted command kept, and how to go on.
RESUME = {
    "pack": "the finished shards are kept: the same command finishes the pack",
    "probe": "with --mode sgd --state FILE the same command continues after the last finished epoch",
    "sweep": "the finished τ values are kept: the same command trains the rest",
}


if __name__ == "__main__":
    raise SystemExit(main())
