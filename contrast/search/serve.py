"""``contrast serve DIR --ckpt C``: search a collection ``contrast embed`` and ``contrast index`` wrote,
as a JSON API and a web page (FastAPI + uvicorn: ``pip install 'contrast[serve]'``).

* ``GET /search?text=…&k=10``: text → image;
* ``POST /search`` with a multipart ``image`` (``?target=text``: image → text; default image → image);
* each answers ``{"results": [{"id", "score", "path" | "shard" + "key" | "pack" + "index", "caption"}, …],
  "ms": …}``;
* ``GET /healthz``; ``GET /item/images/<id>``: an image's bytes (what the page shows); ``GET /``: the page.

The index must be the checkpoint's (its fingerprint is compared before serving). Requests are
bounded: a query of at most 1,000 characters, an upload of at most ``max_upload`` bytes (413 past
it), k in [1, 100]; an upload that is not an image is a 400 with a message; no request stops the
service.
"""

# No ``from __future__ import annotations`` here: FastAPI reads the endpoints' annotations (the
# upload's ``UploadFile``) as objects, and they name a module imported inside create_app.
import json
import threading
import time
from importlib import resources
from pathlib import Path

import numpy as np
import torch

MAX_TEXT = 1000
MAX_K = 100


def _fastapi():
    try:
        import fastapi
    except ImportError:
        raise ValueError("contrast serve needs FastAPI and uvicorn: pip install 'contrast[serve]'") from None
    return fastapi


class Searcher:
    """The model, the indexes and the records of a search folder; ``search(vector, kind, k)``."""

    def __init__(self, folder: str, ckpt: str, index_dir: str | None = None) -> None:
        import faiss

        from contrast.checkpoint import read_checkpoint
        from contrast.methods import CrossModal
        from contrast.search.collection import fingerprint
        from contrast.search.embed import trained_image_size
        from contrast.search.index import embedding_shards

        base = Path(folder)
        checkpoint = read_checkpoint(ckpt)
        self.model = CrossModal.from_checkpoint(checkpoint).eval()
        self.fingerprint = fingerprint(self.model)
        manifest = json.loads((base / "embed.json").read_text())
        self.image_size = int(manifest.get("image_size") or trained_image_size(self.model, checkpoint))
        where = Path(index_dir) if index_dir else base / "index"
        self.indexes, self.records = {}, {}
        for kind in ("images", "texts"):
            if not (where / f"{kind}.faiss").is_file():
                continue
            settings = json.loads((where / f"{kind}.json").read_text())
            if settings["fingerprint"] != self.fingerprint:
                raise ValueError(
                    f"{where / f'{kind}.faiss'}: built for another model (fingerprint {settings['fingerprint']}, "
                    f"--ckpt {ckpt}: {self.fingerprint}); embed and index with this checkpoint"
                )
            index = faiss.read_index(str(where / f"{kind}.faiss"))
            if settings.get("parameter"):
                faiss.ParameterSpace().set_index_parameter(index, settings["parameter"], settings["value"])
            self.indexes[kind] = index
            self.records[kind] = [
                json.loads(line) for _, meta in embedding_shards(base / kind) for line in meta.open(encoding="utf-8")
            ]
        if "images" not in self.indexes:
            raise FileNotFoundError(f"{where}: no images.faiss (run contrast index {base} first)")
        self.lock = threading.Lock()  # one search at a time per index: FAISS and the model share threads

    @torch.no_grad()
    def text_vector(self, text: str) -> np.ndarray:
        vector = self.model.embed_texts(self.model.tokenize([text]))
        return torch.nn.functional.normalize(vector.float(), dim=1).numpy()

    @torch.no_grad()
    def image_vector(self, data: bytes) -> np.ndarray:
        from torchvision.io import ImageReadMode, decode_image
        from torchvision.transforms.v2 import functional as TF

        image = decode_image(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=ImageReadMode.RGB)
        image = TF.center_crop(TF.resize(image, self.image_size, antialias=True), self.image_size)
        vector = self.model.embed_images(image[None])
        return torch.nn.functional.normalize(vector.float(), dim=1).numpy()

    def search(self, vector: np.ndarray, kind: str, k: int) -> list[dict]:
        with self.lock:
            scores, ids = self.indexes[kind].search(vector.astype(np.float32), k)
        return [
            {**self.records[kind][int(i)], "score": round(float(s), 6)} for s, i in zip(scores[0], ids[0]) if i >= 0
        ]

    def item_bytes(self, kind: str, i: int) -> tuple[bytes, str]:
        record = self.records[kind][i]
        if "path" in record:
            data, name = Path(record["path"]).read_bytes(), record["path"]
        elif "shard" in record:
            from contrast.data.shards import TarMember

            member = TarMember(Path(record["shard"]), record["member"], record["offset"], record["size"])
            data, name = member.read_bytes(), record["member"]
        else:
            from contrast.data.pack.read import PackedImages

            data, name = PackedImages(record["pack"]).read(record["index"]), "x.jpg"
        suffix = name.rsplit(".", 1)[-1].lower()
        return data, {"png": "image/png", "webp": "image/webp", "gif": "image/gif"}.get(suffix, "image/jpeg")


def create_app(folder: str, ckpt: str, index_dir: str | None = None, max_upload: int = 10 * 2**20):
    """The FastAPI application over a search folder (see the module doc)."""
    fastapi = _fastapi()
    from fastapi.responses import HTMLResponse, JSONResponse, Response

    searcher = Searcher(folder, ckpt, index_dir)
    app = fastapi.FastAPI(title="contrast search")
    page = resources.files("contrast.search").joinpath("page.html").read_text(encoding="utf-8")

    def answer(vector: np.ndarray, kind: str, k: int, start: float) -> dict:
        results = searcher.search(vector, kind, k)
        return {"results": results, "ms": round(1000 * (time.perf_counter() - start), 2)}

    def check_k(k: int) -> None:
        if not 1 <= k <= MAX_K:
            raise fastapi.HTTPException(400, f"k must lie in [1, {MAX_K}], got {k}")

    @app.get("/healthz")
    def healthz() -> dict:
        return {"status": "ok", "fingerprint": searcher.fingerprint, **{k: len(v) for k, v in searcher.records.items()}}

    @app.get("/", response_class=HTMLResponse)
    def index_page() -> str:
        return page

    @app.get("/search")
    def search_text(text: str = "", k: int = 10) -> dict:
        start = time.perf_counter()
        check_k(k)
        if not text.strip() or len(text) > MAX_TEXT:
            raise fastapi.HTTPException(400, f"text: a query of 1 to {MAX_TEXT} characters")
        return answer(searcher.text_vector(text), "images", k, start)

    @app.post("/search")
    async def search_image(image: fastapi.UploadFile, k: int = 10, target: str = "image") -> dict:
        start = time.perf_counter()
        check_k(k)
        if target not in ("image", "text"):
            raise fastapi.HTTPException(400, f"target must be image or text, got {target!r}")
        kind = "images" if target == "image" else "texts"
        if kind not in searcher.indexes:
            raise fastapi.HTTPException(400, "target=text: this folder has no text index (embed --texts, then index)")
        data = await image.read(max_upload + 1)
        if len(data) > max_upload:
            raise fastapi.HTTPException(413, f"image: at most {max_upload} bytes")
        try:
            vector = searcher.image_vector(data)
        except Exception:  # noqa: BLE001 - whatever the decoder says, the answer is the same
            raise fastapi.HTTPException(400, "image: not a decodable image (JPEG, PNG, WebP, GIF)") from None
        return answer(vector, kind, k, start)

    @app.get("/item/{kind}/{item}")
    def item(kind: str, item: int):
        if kind != "images" or not 0 <= item < len(searcher.records["images"]):
            return JSONResponse({"detail": "no such item"}, status_code=404)
        data, media = searcher.item_bytes(kind, item)
        return Response(content=data, media_type=media)

    return app


def serve(folder: str, ckpt: str, host: str = "127.0.0.1", port: int = 8000, index_dir: str | None = None) -> None:
    """``contrast serve``: the application on ``host:port`` until interrupted."""
    app = create_app(folder, ckpt, index_dir)
    import uvicorn

    print(f"searching {folder} on http://{host}:{port}/ (Ctrl-C stops)", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")
