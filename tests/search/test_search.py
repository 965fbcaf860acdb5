"""After training: ``contrast embed`` (float16 shards + metadata, resumed by shard, the same output for
any number of ranks), ``contrast index`` (the index chosen by count, width and memory, its recall
measured against exact FAISS search), ``contrast serve`` (its JSON API through FastAPI's own test
client: text → image, image → image, image → text, bad requests answered 4xx and the service goes on),
and the bad input named."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("webdataset", reason="webdataset writes the shards (the bench extra)")

from contrast.cli import main  # noqa: E402
from contrast.methods import CrossModal  # noqa: E402
from contrast.search.collection import fingerprint, images_of  # noqa: E402
from contrast.search.embed import embed, embed_shards  # noqa: E402
from contrast.search.index import choose  # noqa: E402
from tests.search.conftest import checkpoint  # noqa: E402


def test_embed_writes_normalised_float16_shards_with_their_records(collection):
    root, ckpt, images, captions = collection
    shards = sorted((root / "out/images").glob("*.npy"))
    assert [p.name for p in shards] == ["00000.npy", "00001.npy", "00002.npy"]  # 25 + 25 + 10
    vectors = np.concatenate([np.load(p) for p in shards])
    assert vectors.dtype == np.float16 and vectors.shape == (60, 128)
    np.testing.assert_allclose(np.linalg.norm(vectors.astype(np.float32), axis=1), 1, atol=2e-3)
    records = [json.loads(line) for p in shards for line in p.with_suffix(".jsonl").open()]
    assert [r["id"] for r in records] == list(range(60)) and [r["caption"] for r in records] == captions
    assert all(Path(r["shard"]).is_absolute() for r in records)  # the service may run from another folder
    model = CrossModal.from_checkpoint(ckpt)
    with torch.no_grad():
        expected = torch.nn.functional.normalize(model.embed_images(images[:5]), dim=1)
    np.testing.assert_allclose(vectors[:5].astype(np.float32), expected.numpy(), atol=2e-3)
    manifest = json.loads((root / "out/embed.json").read_text())
    assert manifest["fingerprint"] == fingerprint(model) and manifest["dim"] == 128
    assert manifest["sources"]["texts"]["count"] == 60


def test_embed_resumes_by_shard_and_ranks_write_the_same_shards(collection, tmp_path):
    root, ckpt, _, _ = collection
    model = CrossModal.from_checkpoint(ckpt)
    items = images_of(str(root / "shards"), 32)
    assert embed_shards(model, items, tmp_path / "one", 25, 8) == (3, 0)
    assert embed_shards(model, items, tmp_path / "one", 25, 8) == (0, 3)  # done: skipped
    (tmp_path / "one/00001.jsonl").unlink()  # interrupted before shard 1's records were written
    assert embed_shards(model, items, tmp_path / "one", 25, 8) == (1, 2)
    for rank in range(2):  # two ranks: each its shards (0, 2) and (1)
        embed_shards(model, items, tmp_path / "two", 25, 8, rank=rank, world=2)
    for name in ("00000.npy", "00001.npy", "00002.npy", "00001.jsonl"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes(), name


def test_the_index_recalls_exact_search_and_its_choice_follows_the_rules(collection):
    import faiss

    root, _, _, _ = collection
    settings = json.loads((root / "out/index/images.json").read_text())
    assert settings["factory"] == "Flat" and settings["recall@10"] == 1.0  # 60 vectors: exact
    index = faiss.read_index(str(root / "out/index/images.faiss"))
    vectors = np.concatenate([np.load(p) for p in sorted((root / "out/images").glob("*.npy"))]).astype(np.float32)
    exact = faiss.IndexFlatIP(128)
    exact.add(vectors)
    assert np.array_equal(index.search(vectors[:5], 10)[1], exact.search(vectors[:5], 10)[1])
    assert choose(500, 512, 2**30) == ("Flat", None)
    assert choose(5000, 512, 2**30) == ("HNSW32", "efSearch")
    assert choose(200_000, 512, 2**30)[0].startswith("IVF") and choose(200_000, 512, 2**30)[0].endswith(",Flat")
    assert choose(1_000_000, 512, 2**30) == ("IVF4096,SQ8", "nprobe")  # 2 GB of float32 in 1 GB: a byte a dim
    assert choose(1_000_000, 512, 45 * 10**7) == ("IVF4096,SQ6", "nprobe")  # 384 + 8 bytes a vector, 10% lists
    assert choose(1_000_000, 512, 3 * 10**8) == ("IVF4096,PQ256x8", "nprobe")  # less: a byte for two dims
    assert choose(1_000_000, 512, 2 * 10**8)[0] == "OPQ128_512,IVF4096_HNSW32,PQ128x8"  # less: fewer bytes
    with pytest.raises(ValueError, match="hold no index of 1,000,000 vectors"):
        choose(1_000_000, 512, 10**6)


def test_sampling_and_exact_search_read_the_shards_as_one_array(tmp_path):
    import faiss

    from contrast.search.index import exact_search, sample, shape_of

    g = np.random.default_rng(1)
    vectors = g.normal(size=(70, 8)).astype(np.float16)
    (tmp_path / "e").mkdir()
    for i, (a, b) in enumerate([(0, 30), (30, 31), (31, 70)]):  # shards of 30, 1 and 39 rows
        np.save(tmp_path / f"e/{i:05d}.npy", vectors[a:b])
        (tmp_path / f"e/{i:05d}.jsonl").write_text("")
    assert shape_of(tmp_path / "e") == (70, 8)
    drawn = sample(tmp_path / "e", 50, seed=3)
    rows = {tuple(r) for r in vectors.astype(np.float32)}
    assert drawn.shape == (50, 8) and drawn.dtype == np.float32
    assert len({tuple(r) for r in drawn}) == 50 and {tuple(r) for r in drawn} <= rows  # distinct rows of the set
    assert sorted(map(tuple, sample(tmp_path / "e", 500, seed=3))) == sorted(rows)  # at most all
    queries = g.normal(size=(9, 8)).astype(np.float32)
    exact = faiss.IndexFlatIP(8)
    exact.add(vectors.astype(np.float32))
    np.testing.assert_array_equal(exact_search(tmp_path / "e", queries, 10), exact.search(queries, 10)[1])


def test_an_ivf_index_is_tuned_to_its_recall(tmp_path):
    from contrast.search.index import build

    g = np.random.default_rng(0)
    centres = g.normal(size=(20, 32))
    vectors = (centres[g.integers(0, 20, 12_000)] + 0.3 * g.normal(size=(12_000, 32))).astype(np.float16)
    vectors /= np.linalg.norm(vectors.astype(np.float32), axis=1, keepdims=True).astype(np.float16)
    (tmp_path / "images").mkdir()
    for i in range(3):
        np.save(tmp_path / f"images/{i:05d}.npy", vectors[i * 4000 : (i + 1) * 4000])
        (tmp_path / f"images/{i:05d}.jsonl").write_text("".join(json.dumps({"id": j}) + "\n" for j in range(4000)))
    record = build(tmp_path, "images", 4 * 12_000 * 32 * 2, 50.0, "x", tmp_path / "index")  # HNSW does not fit
    assert record["factory"].startswith("IVF") and record["parameter"] == "nprobe"
    assert record["recall@10"] >= 0.9 and record["count"] == 12_000
    record = build(tmp_path, "images", 10**6, 50.0, "x", tmp_path / "sq8")  # float32 does not fit: 8-bit codes
    assert record["factory"] == "IVF512,SQ8" and record["recall@10"] >= 0.9
    assert record["file_bytes"] < 12_000 * 32 * 2  # smaller than the float16 vectors
    smaller = record["file_bytes"]
    for budget, factory, floor in [(5 * 10**5, "IVF512,SQ6", 0.8), (42 * 10**4, "IVF512,PQ16x8", 0.6)]:  # less
        record = build(tmp_path, "images", budget, 50.0, "x", tmp_path / factory)  # 6 bits, then 4 bits a dim
        assert record["factory"] == factory and record["recall@10"] >= floor, record  # 12,000 vectors: chance 0.001
        assert record["file_bytes"] < smaller  # each a smaller code than the last
        smaller = record["file_bytes"]


def test_the_service_answers_text_image_and_bad_requests(collection):
    from fastapi.testclient import TestClient

    from contrast.search.serve import create_app

    root, ckpt, images, captions = collection
    client = TestClient(create_app(str(root / "out"), str(ckpt), max_upload=100_000))
    assert client.get("/healthz").json()["images"] == 60
    answer = client.get("/search", params={"text": captions[3], "k": 5}).json()
    assert len(answer["results"]) == 5 and answer["ms"] >= 0
    assert {"id", "score", "shard", "key", "caption"} <= set(answer["results"][0])
    scores = [r["score"] for r in answer["results"]]
    assert scores == sorted(scores, reverse=True)
    png = io.BytesIO()
    from PIL import Image

    Image.fromarray(images[7].permute(1, 2, 0).numpy()).save(png, format="PNG")
    found = client.post("/search", files={"image": ("q.png", png.getvalue(), "image/png")}, params={"k": 3}).json()
    assert found["results"][0]["id"] == 7 and found["results"][0]["score"] > 0.99  # the image itself first
    texts = client.post("/search", files={"image": ("q.png", png.getvalue())}, params={"target": "text"}).json()
    assert len(texts["results"]) == 10 and "caption" in texts["results"][0]
    item = client.get("/item/images/7")
    assert item.status_code == 200 and item.headers["content-type"] == "image/png"
    assert client.post("/search", files={"image": ("x.png", b"not an image")}).status_code == 400
    assert client.post("/search", files={"image": ("x.png", b"0" * 200_000)}).status_code == 413
    assert client.get("/search", params={"text": ""}).status_code == 400
    assert client.get("/search", params={"text": "x" * 2000}).status_code == 400
    assert client.get("/search", params={"text": "red", "k": 0}).status_code == 400
    assert client.get("/item/images/999").status_code == 404
    assert client.get("/healthz").status_code == 200  # and it goes on serving
    assert '<input id="query"' in client.get("/").text


def test_bad_input_is_named(collection, tmp_path):
    from contrast.search.index import embedding_shards, parse_bytes
    from contrast.search.serve import create_app

    root, ckpt, _, _ = collection
    other = checkpoint(tmp_path, seed=1)
    with pytest.raises(ValueError, match="built for another model"):
        create_app(str(root / "out"), str(other))
    with pytest.raises(ValueError, match="holds the embeddings of another model"):
        embed(str(other), str(root / "out"), str(root / "shards"), None)
    broken = shutil.copytree(root / "out/images", tmp_path / "broken")
    (broken / "00001.jsonl").unlink()
    with pytest.raises(ValueError, match="shard 00001.npy has no metadata file"):
        embedding_shards(broken)
    (broken / "00001.jsonl").write_text("")
    np.save(broken / "00002.npy", np.zeros((3, 8), dtype=np.float16))
    with pytest.raises(ValueError, match="shards of different widths"):
        embedding_shards(broken)
    with pytest.raises(ValueError, match="--max_memory: a size such as 4GB"):
        parse_bytes("lots")
    assert parse_bytes("1.5GB") == 1_500_000_000 and parse_bytes("512MiB") == 2**29


@pytest.mark.slow  # torchrun starts two processes
def test_contrast_embed_under_torchrun_on_two_ranks_writes_one_processs_output(collection, tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    root, ckpt, _, _ = collection
    repo = Path(__file__).resolve().parents[2]
    command = [
        "-m",
        "contrast.cli",
        "embed",
        "--ckpt",
        str(ckpt),
        "--images",
        str(root / "shards"),
        "--shard_size",
        "25",
    ]
    env = dict(os.environ, PYTHONPATH=str(repo), OMP_NUM_THREADS="1")
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    proc = subprocess.run(
        [*launcher, *command, "--out", str(tmp_path / "two")], env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in ("00000.npy", "00001.npy", "00002.npy", "00000.jsonl", "00002.jsonl"):
        assert (tmp_path / "two/images" / name).read_bytes() == (root / "out/images" / name).read_bytes(), name


def test_an_index_built_in_two_parts_and_merged_on_disk_equals_one_built_whole(tmp_path):
    """Two shard groups added on "two machines" to one trained IVF index, merged with FAISS's merge_ondisk:
    the same neighbours, under the collection's ids, as the same trained index filled in one go."""
    import faiss

    from contrast.search.index import index

    g = np.random.default_rng(1)
    vectors = g.normal(size=(3000, 16)).astype(np.float32)
    vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float16)
    (tmp_path / "images").mkdir()
    for i in range(4):
        np.save(tmp_path / f"images/{i:05d}.npy", vectors[i * 750 : (i + 1) * 750])
        (tmp_path / f"images/{i:05d}.jsonl").write_text(
            "".join(json.dumps({"id": i * 750 + j}) + "\n" for j in range(750))
        )
    (tmp_path / "embed.json").write_text(json.dumps({"fingerprint": "f", "dim": 16}))
    assert main(["index", str(tmp_path), "--train_only"]) == 0
    for part in ("0/2", "1/2"):  # each on its machine, the same trained index
        assert main(["index", str(tmp_path), "--part", part]) == 0
    assert main(["index", str(tmp_path), "--merge", "2", "--max_query_ms", "100"]) == 0
    record = json.loads((tmp_path / "index/images.json").read_text())
    assert record["factory"].startswith("IVF") and record["parts"] == 2 and record["count"] == 3000
    assert (tmp_path / "index/images.ivfdata").is_file()
    merged = faiss.read_index(str(tmp_path / "index/images.faiss"))
    whole = faiss.read_index(str(tmp_path / "index/images.trained.faiss"))
    whole.add_with_ids(vectors.astype(np.float32), np.arange(3000, dtype=np.int64))
    for each in (merged, whole):
        faiss.ParameterSpace().set_index_parameter(each, "nprobe", 8)
    queries = vectors[:50].astype(np.float32)
    assert merged.ntotal == 3000
    assert np.array_equal(merged.search(queries, 10)[1], whole.search(queries, 10)[1])
    with pytest.raises(ValueError, match="--part: K/N with 0 <= K < N"):
        index(str(tmp_path), part="2/2")


def test_contrast_index_runs_without_importing_torch(tmp_path):
    """``contrast index`` needs numpy and FAISS only: a fresh process that builds an index has not loaded
    torch (0.9 GB resident), so the build's memory is the index's."""
    import subprocess
    import sys

    vectors = np.random.default_rng(0).normal(size=(500, 16)).astype(np.float16)
    (tmp_path / "images").mkdir()
    np.save(tmp_path / "images/00000.npy", vectors)
    (tmp_path / "images/00000.jsonl").write_text("".join(json.dumps({"id": i}) + "\n" for i in range(500)))
    (tmp_path / "embed.json").write_text(json.dumps({"fingerprint": "f", "dim": 16}))
    script = (
        "import sys; from contrast.cli import main; "
        f"assert main(['index', {str(tmp_path)!r}]) == 0; "
        f"assert main(['index', {str(tmp_path / 'images')!r}]) == 2; "  # bad input: reported, no torch either
        "print('torch' in sys.modules, 'lightning' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert done.stdout.splitlines()[-1] == "False False", done.stdout + done.stderr
    assert "contrast index: error: " in done.stderr and "no embed.json" in done.stderr
    assert json.loads((tmp_path / "index/images.json").read_text())["factory"] == "Flat"
