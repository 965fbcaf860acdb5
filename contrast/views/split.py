"""The split path: views cut from the full image in the DataLoader workers, colour on the device.

Per sample, a generator seeded from (seed, index) — the sampler's index is ``epoch·N + i``, so the
triple (seed, epoch, sample) — draws every random number of the sample's views: each view's crop box
(torchvision's RandomResizedCrop algorithm on the full image's height and width) and flip, and its
colour parameters. So a sample's views do not depend on the step, the rank, the batch it lands in,
the number of workers or the world size.

* workers (:class:`SplitViews`, CPU): decode the image once, cut and resize each view to its output
  size as uint8 (antialiased, as torchvision's ``resized_crop``), flip it; hand over the crops and
  the colour parameters (a small float tensor per view);
* device (:meth:`BatchedViews.colour`): colour jitter, grayscale, blur, solarize and normalisation
  for the whole batch at once.
"""

from __future__ import annotations

import torch
from torch import Tensor

from contrast.seeds import derive_seed
from contrast.views.batched import BatchedViews
from contrast.views.params import UNIFORMS_PER_VIEW, ViewParams, draw_packed, recipe_table
from contrast.views.recipes import Recipe, Views, view_recipes

BOX_AND_FLIP = ViewParams.columns("boxes", "flip")  # top, left, height, width, flip: what a worker cuts


class SplitViews:
    """The worker side: ``(image, index) -> ((crop_q, crop_k), (params_q, params_k))``, one crop and
    parameter vector per view (``(q,)``: one view; ``(q, k, s_1, …, s_n)``: multi-crop, all cut from
    the one decode of the image).

    ``image``: (C, H, W) uint8, the whole image; crops (C, size, size) uint8 of each recipe's size;
    params (18,) float32 (:meth:`ViewParams.pack`) of the colour stage."""

    def __init__(self, views: str | Recipe | Views, seed: int = 0) -> None:
        recipes = view_recipes(views)
        self.views = tuple(BatchedViews(r) for r in recipes)  # (q, k), (q,), or (q, k, s_1, …, s_n)
        self.table = recipe_table(recipes)  # one row per view: all of a sample's views in one draw
        self.sizes = [r.size for r in recipes]
        self.seed = seed

    def packed(self, height: int, width: int, index: int) -> Tensor:
        """(V, 18) float32: every view's packed parameters (:meth:`ViewParams.pack`) of sample ``index``
        of an image of this size, from one draw of (V, UNIFORMS_PER_VIEW) uniforms (the same numbers,
        view after view, as V draws of one)."""
        generator = torch.Generator().manual_seed(derive_seed(self.seed, "split views", index))
        u = torch.rand(len(self.views), UNIFORMS_PER_VIEW, generator=generator, dtype=torch.float64).numpy()
        return torch.from_numpy(draw_packed(u, height, width, self.table))

    def parameters(self, height: int, width: int, index: int) -> tuple[Tensor, ...]:
        """Every view's packed parameters (18,), for a decode on the device."""
        return tuple(self.packed(height, width, index))

    def sample(self, height: int, width: int, index: int) -> tuple[ViewParams, ...]:
        """The parameters of every view of sample ``index`` of an image of this size."""
        return tuple(ViewParams.unpack(row[None]) for row in self.packed(height, width, index))

    def __call__(self, image: Tensor, index: int) -> tuple[tuple[Tensor, ...], tuple[Tensor, ...]]:
        packed = self.packed(image.shape[1], image.shape[2], index)
        return self._cut(image, packed), tuple(packed)

    def _cut(self, image: Tensor, packed: Tensor) -> tuple[Tensor, ...]:
        """Each view's crop (C, s, s) uint8 of ``image``, from its packed box (columns 0-3) and flip (4):
        torch's antialiased bilinear resize of the box, the kernel of torchvision's ``resized_crop``
        (called directly: the same pixels, without its per-call dispatch)."""
        from torch.nn import functional as F

        crops = []
        for size, (top, left, height, width, flip) in zip(self.sizes, packed[:, BOX_AND_FLIP].tolist()):
            top, left = int(top), int(left)
            box = image[None, :, top : top + int(height), left : left + int(width)]
            crop = F.interpolate(box, size=(size, size), mode="bilinear", antialias=True, align_corners=False)[0]
            crops.append(crop.flip(-1) if flip else crop)
        return tuple(crops)

    def from_jpeg(self, data: bytes, height: int, width: int, index: int):
        """The same from JPEG bytes of an image of known size (a pack's index holds it): the boxes
        are drawn before decoding, so the decode can be a reduced-size DCT decode (1/2, 1/4, 1/8)
        whenever every box stays at least its output size at that scale; each view is then cut from
        the reduced image with PIL's antialiased resize of the box (sub-pixel exact)."""
        import io

        import numpy as np
        from PIL import Image

        packed = self.packed(height, width, index)
        boxes = packed[:, BOX_AND_FLIP].tolist()  # top, left, height, width, flip of each view
        room = min(min(h, w) / size for (_, _, h, w, _), size in zip(boxes, self.sizes))
        factor = 1
        while factor < 8 and 2 * factor <= room:
            factor *= 2
        if factor == 1:  # a full decode: torchvision's decoder and crop are the faster ones
            from torchvision.io import ImageReadMode, decode_jpeg

            image = decode_jpeg(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=ImageReadMode.RGB)
            return self._cut(image, packed), tuple(packed)
        with Image.open(io.BytesIO(data)) as image:
            image.draft("RGB", (-(-width // factor), -(-height // factor)))
            image = image.convert("RGB")
        sx, sy = image.width / width, image.height / height
        crops = []
        for (top, left, h, w, flip), size in zip(boxes, self.sizes):
            box = (left * sx, top * sy, (left + w) * sx, (top + h) * sy)
            crop = image.resize((size, size), Image.Resampling.BILINEAR, box=box)
            if flip:
                crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            crops.append(torch.from_numpy(np.array(crop)).permute(2, 0, 1).contiguous())  # (3, s, s) uint8
        return tuple(crops), tuple(packed)


def cut_on_device(
    views: tuple[BatchedViews, ...], encoded: list[Tensor], params: tuple[Tensor, ...], device
) -> tuple[Tensor, ...]:
    """The decode on the device (``decode: device``): JPEG bytes (a list of 1-D uint8 tensors) are
    decoded there in one call (``torchvision.io.decode_jpeg(list, device=...)``), and each view is
    cut and resized there with the boxes the workers drew; (B, C, s, s) uint8 crops per view."""
    from torchvision.io import ImageReadMode, decode_jpeg
    from torchvision.transforms.v2 import functional as TF

    images = decode_jpeg(encoded, mode=ImageReadMode.RGB, device=device)  # B × (3, H, W)
    out = []
    for v, packed in zip(views, params):
        p = ViewParams.unpack(packed)
        size = v.recipe.size
        crops = []
        for image, box, flip in zip(images, p.boxes.tolist(), p.flip.tolist()):
            top, left, height, width = (int(x) for x in box)
            crop = TF.resized_crop(image, top, left, height, width, [size, size], antialias=True)
            crops.append(crop.flip(-1) if flip else crop)
        out.append(torch.stack(crops))
    return tuple(out)


def colour_views(
    views: tuple[BatchedViews, ...], crops: tuple[Tensor, ...], params: tuple[Tensor, ...]
) -> tuple[Tensor, ...]:
    """The device side: (q, k) normalised float32 from the workers' uint8 crops (B, C, s, s) and
    their packed parameters (B, 18) (kept on the CPU: the masks are read there, not on the device)."""
    return tuple(v.colour(x, ViewParams.unpack(p)) for v, x, p in zip(views, crops, params))
