"""The search service under load: ``contrast serve`` over an embedded, indexed collection, 16 concurrent
clients for 30 s of mixed queries on loopback (text → image, image → image, image → text), each client
one request at a time. Recorded: throughput, median and p99 latency, errors, and the server's resident
memory at the start and the end (it must stay flat).

The collection: CIFAR-10's test split (``$CONTRAST_DATA_DIR/cifar10-jpeg``) in img2dataset-layout
shards (``make_shards.py``), embedded by a two-tower model (``--ckpt``; default: a tiny one built here
with random weights, which loads the service as a trained one does).

    python benchmarks/bench_serve.py --clients 16 --seconds 30
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import append_results, markdown_table, two_tower_checkpoint  # noqa: E402


def _rss(pid: int) -> int:
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", help="a CrossModal checkpoint (default: a tiny random one)")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()
    import httpx
    import make_shards

    from contrast.cli import main as contrast

    data = Path(os.environ.get("CONTRAST_DATA_DIR", "data")) / "cifar10-jpeg"
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_shards.main(
            [
                "--source",
                str(data),
                "--out",
                str(root / "shards"),
                "--train",
                "10000",
                "--test",
                "100",
                "--per-shard",
                "2500",
            ]
        )
        tiny = dict(dataset="cifar10_captions", train_subset=2000, eval_subset=200, batch_size=64)
        ckpt = Path(args.ckpt) if args.ckpt else two_tower_checkpoint(root, "tiny_cnn", **tiny)
        shards = str(root / "shards")
        contrast(["embed", "--ckpt", str(ckpt), "--images", shards, "--texts", shards, "--out", str(root / "out")])
        contrast(["index", str(root / "out"), "--max_memory", "1GB"])
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "contrast.cli",
                "serve",
                str(root / "out"),
                "--ckpt",
                str(ckpt),
                "--port",
                str(port),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"http://127.0.0.1:{port}"
        for _ in range(240):
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        captions = [line.split("\t")[1].strip() for line in (root / "shards/train.csv").open().readlines()[1:200]]
        files = sorted((data / "test").rglob("*.jpg"))[:200]
        pictures = [p.read_bytes() for p in files]
        latencies, errors, lock = [], [], threading.Lock()
        start_rss = _rss(server.pid)
        stop = time.perf_counter() + args.seconds

        def client(seed: int) -> None:
            rng = random.Random(seed)
            with httpx.Client(base_url=url, timeout=30) as session:
                while time.perf_counter() < stop:
                    kind = rng.choice(("text", "image", "image_text"))
                    begin = time.perf_counter()
                    try:
                        if kind == "text":
                            response = session.get("/search", params={"text": rng.choice(captions), "k": 10})
                        else:
                            target = "image" if kind == "image" else "text"
                            files_ = {"image": ("q.jpg", rng.choice(pictures), "image/jpeg")}
                            response = session.post("/search", params={"k": 10, "target": target}, files=files_)
                        ok = response.status_code == 200 and len(response.json()["results"]) == 10
                    except httpx.HTTPError as error:
                        ok, response = False, error
                    with lock:
                        latencies.append(1000 * (time.perf_counter() - begin))
                        if not ok:
                            errors.append(str(response)[:200])

        threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
        began = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - began
        end_rss = _rss(server.pid)
        server.terminate()
        server.wait(timeout=30)
    import numpy as np

    rows = [
        [
            f"{args.clients}",
            f"{elapsed:.1f}",
            f"{len(latencies):,}",
            f"{len(latencies) / elapsed:.1f}",
            f"{np.median(latencies):.1f}",
            f"{np.percentile(latencies, 99):.1f}",
            f"{len(errors)}",
            f"{start_rss / 2**20:.0f} → {end_rss / 2**20:.0f}",
        ]
    ]
    header = ["clients", "s", "requests", "requests/s", "median ms", "p99 ms", "errors", "server RSS MiB"]
    table = markdown_table(header, rows)
    print(table)
    if errors:
        print("first errors:", errors[:3])
    if not args.no_append:
        notes = (
            "CIFAR-10 (10,000 training images and their captions) in 4 shards, embedded and indexed by "
            "contrast (the index contrast index chose for 10,000 vectors), served by `contrast serve` "
            "(uvicorn, one process); each client a thread on the same 2-core machine, one request at a "
            "time, a third each of text → image, image → image and image → text (a CIFAR-10 test JPEG "
            "uploaded), k=10."
        )
        append_results("The search service under load", "cpu", table, notes)


if __name__ == "__main__":
    main()
