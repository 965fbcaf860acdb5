"""The batched path against torchvision: each op given the same parameters, and the parameter
distributions against torchvision's own samplers (which the CPU path uses)."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torchvision.transforms as T1
from torchvision.transforms.v2 import functional as TF

from contrast.views import RECIPES, BatchedTwoViews, BatchedViews, Recipe, ops
from contrast.views import batched as B
from tests.conftest import require

N_DRAWS = 20000
P_MIN = 1e-3  # KS tests: reject only clear mismatches at this many draws
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _images(n=6, c=3, h=32, w=32, seed=0):
    return torch.rand(n, c, h, w, generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------------- ops vs torchvision
@pytest.mark.parametrize(
    "shape,box,size",
    [
        ((32, 32), (0, 0, 32, 32), 32),
        ((32, 32), (3, 5, 20, 11), 32),  # upsampling, non-square
        ((32, 32), (10, 2, 8, 30), 32),
        ((256, 200), (10, 20, 200, 150), 64),  # downsampling: antialiasing weights
        ((256, 200), (5, 7, 97, 31), 64),
        ((48, 64), (0, 0, 48, 64), 96),
    ],
)
def test_resized_crop_matches_torchvision(shape, box, size):
    x = _images(3, 3, *shape)
    ours = B.resized_crop(x, torch.tensor([box] * 3, dtype=torch.float), size)
    ref = TF.resized_crop(x, *box, [size, size], antialias=True)
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-5)


def test_resized_crop_uses_each_samples_own_box():
    x = _images(2)
    boxes = torch.tensor([[0, 0, 16, 16], [8, 4, 20, 24]], dtype=torch.float)
    ours = B.resized_crop(x, boxes, 32)
    for i in range(2):
        ref = TF.resized_crop(x[i], *[int(v) for v in boxes[i]], [32, 32], antialias=True)
        torch.testing.assert_close(ours[i], ref, rtol=0, atol=1e-5)


@pytest.mark.parametrize("factor", [0.0, 0.6, 1.0, 1.4])
def test_brightness_contrast_saturation_match_torchvision(factor):
    x = _images()
    f = torch.full((6,), factor)
    for ours, ref in (
        (B.adjust_brightness(x, f), TF.adjust_brightness(x, factor)),
        (B.adjust_contrast(x, f), TF.adjust_contrast(x, factor)),
        (B.adjust_saturation(x, f), TF.adjust_saturation(x, factor)),
    ):
        torch.testing.assert_close(ours, ref, rtol=0, atol=1e-5)


@pytest.mark.parametrize("shift", [-0.5, -0.4, -0.1, 0.0, 0.05, 0.17, 0.5])
def test_hue_matches_torchvision(shift):
    x = _images()
    x[0, :, :8] = 0.5  # gray pixels (hue undefined)
    x[1, 0] = x[1, 1]  # r == g ties
    x[2, 1] = x[2, 2]  # g == b ties
    x[3, :, :4], x[3, :, 4:8] = 0.0, 1.0  # black and white
    torch.testing.assert_close(B.adjust_hue(x, torch.full((6,), shift)), TF.adjust_hue(x, shift), rtol=0, atol=1e-5)


def test_per_sample_factors_are_applied_per_sample():
    x = _images(3)
    factors = torch.tensor([0.5, 1.0, 1.5])
    ours = B.adjust_contrast(x, factors)
    for i, f in enumerate(factors.tolist()):
        torch.testing.assert_close(ours[i], TF.adjust_contrast(x[i], f), rtol=0, atol=1e-5)


@pytest.mark.parametrize("kernel,sigma", [(3, 0.1), (3, 1.0), (23, 2.0), (9, 0.7)])
def test_gaussian_blur_matches_torchvision(kernel, sigma):
    x = _images(2, 3, 40, 40)
    ours = B.gaussian_blur(x, kernel, torch.full((2,), sigma))
    torch.testing.assert_close(ours, TF.gaussian_blur(x, [kernel, kernel], [sigma, sigma]), rtol=0, atol=1e-5)


def test_gaussian_blur_of_a_batch_in_cpu_chunks_uses_each_sample_s_sigma(monkeypatch):
    """More samples than a CPU chunk (4 here): each blurred with its own σ, as torchvision."""
    monkeypatch.setattr(ops, "CPU_BLUR_ELEMENTS", 4 * 3 * 30 * 30)
    n = 2 * 4 + 1
    x, sigma = _images(n, 3, 30, 30, seed=5), torch.linspace(0.2, 2.0, n)
    ours = B.gaussian_blur(x, 9, sigma)
    for i in range(n):
        expected = TF.gaussian_blur(x[i], [9, 9], [float(sigma[i])] * 2)
        torch.testing.assert_close(ours[i], expected, rtol=0, atol=1e-5)


def test_grayscale_and_solarize_match_torchvision():
    x = _images()
    torch.testing.assert_close(B.grayscale(x).expand(-1, 3, -1, -1), TF.rgb_to_grayscale(x, 3), rtol=0, atol=1e-6)
    torch.testing.assert_close(B.solarize(x, 0.5), TF.solarize(x, 0.5))


def _reference_chain(image: torch.Tensor, recipe: Recipe, p: B.ViewParams, i: int) -> torch.Tensor:
    """The recipe applied to one float image with torchvision ops and sample i's parameters."""
    top, left, h, w = (int(v) for v in p.boxes[i])
    x = TF.resized_crop(image, top, left, h, w, [recipe.size, recipe.size], antialias=True)
    if p.flip[i]:
        x = TF.horizontal_flip(x)
    if p.jitter[i]:
        ops = (TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue)
        for op in p.order[i].tolist():
            x = ops[op](x, float(p.factors[i, op]))
    if p.grayscale[i]:
        x = TF.rgb_to_grayscale(x, 3)
    if p.blur[i]:
        x = TF.gaussian_blur(x, [recipe.blur_kernel] * 2, [float(p.sigma[i])] * 2)
    if p.solarize[i]:
        x = TF.solarize(x, recipe.solarize_threshold)
    return TF.normalize(x, recipe.mean, recipe.std)


@pytest.mark.parametrize("name", ["simclr_cifar10", "moco_v3_k", "simclr_imagenet"])
def test_whole_chain_matches_torchvision_ops_with_the_same_parameters(name, monkeypatch):
    recipe = RECIPES[name]
    if recipe.size > 64:
        recipe = recipe.with_(size=48, blur_kernel=5)
    recipe = recipe.with_(blur_p=max(recipe.blur_p, 0.5) if recipe.blur_kernel else 0.0, solarize_p=0.5)
    views = BatchedViews(recipe)
    monkeypatch.setattr(ops, "CPU_CHUNK_ELEMENTS", 16 * 3 * recipe.size**2)  # chunks of 16 views
    n = 2 * 16 + 3  # the CPU runs the chain in chunks: three here, one partial
    x = _images(n, 3, 40, 36, seed=3)
    params = views.sample(n, 40, 36, torch.Generator().manual_seed(4))
    ours = views.apply(x, params)
    assert params.jitter.any() and params.solarize.any()
    for i in range(n):
        torch.testing.assert_close(ours[i], _reference_chain(x[i], recipe, params, i), rtol=0, atol=2e-5)


# ---------------------------------------------------------------------- parameter distributions
@pytest.fixture(scope="module")
def draws():
    recipe = RECIPES["moco_v3_k"]  # every op active: blur 0.1, solarize 0.2
    return recipe, BatchedViews(recipe).sample(N_DRAWS, 48, 64, torch.Generator().manual_seed(0))


def _ks_2samp(a, b):
    return require("scipy.stats").ks_2samp(a, b).pvalue


def test_crop_distribution_matches_torchvision(draws):
    recipe, p = draws
    torch.manual_seed(0)
    image = torch.zeros(3, 48, 64)
    ref = torch.tensor(
        [
            T1.RandomResizedCrop.get_params(image, list(recipe.crop_scale), list(recipe.crop_ratio))
            for _ in range(N_DRAWS)
        ],
        dtype=torch.float,
    )
    for column, name in ((0, "top"), (1, "left")):
        assert _ks_2samp(p.boxes[:, column], ref[:, column]) > P_MIN, name
    area = lambda b: b[:, 2] * b[:, 3] / (48 * 64)  # noqa: E731
    ratio = lambda b: b[:, 3] / b[:, 2]  # noqa: E731
    assert _ks_2samp(area(p.boxes), area(ref)) > P_MIN
    assert _ks_2samp(ratio(p.boxes), ratio(ref)) > P_MIN
    # And against the recipe itself: every crop lies inside the image, its ratio within range
    # (up to rounding), and the mean area is that of U(scale) truncated by the fit test.
    assert (p.boxes[:, 0] + p.boxes[:, 2] <= 48).all() and (p.boxes[:, 1] + p.boxes[:, 3] <= 64).all()
    assert abs(area(p.boxes).mean() - area(ref).mean()) < 0.01


def _assert_rate(flags, p, name):
    n = flags.numel()
    sd = math.sqrt(max(p * (1 - p), 1e-12) / n)
    assert abs(flags.float().mean().item() - p) <= 5 * sd + 1e-9, f"{name}: {flags.float().mean():.4f} vs {p}"


def test_bernoulli_rates_match_the_recipe(draws):
    recipe, p = draws
    _assert_rate(p.flip, recipe.flip_p, "flip")
    _assert_rate(p.jitter, recipe.jitter_p, "jitter")
    _assert_rate(p.grayscale, recipe.grayscale_p, "grayscale")
    _assert_rate(p.blur, recipe.blur_p, "blur")
    _assert_rate(p.solarize, recipe.solarize_p, "solarize")


def test_jitter_factors_and_order_match_torchvision(draws):
    recipe, p = draws
    torch.manual_seed(1)
    b, c, s, h = recipe.jitter
    jitter = T1.ColorJitter(b, c, s, h)
    ref = [jitter.get_params(jitter.brightness, jitter.contrast, jitter.saturation, jitter.hue) for _ in range(N_DRAWS)]
    for column in range(4):
        assert _ks_2samp(p.factors[:, column], torch.tensor([r[column + 1] for r in ref])) > P_MIN, column
    # Order: all 24 permutations equally likely (chi-square), as torch.randperm(4).
    counts = torch.zeros(24)
    perms = {perm: i for i, perm in enumerate(itertools.permutations(range(4)))}
    for row in p.order.tolist():
        counts[perms[tuple(row)]] += 1
    chi2 = ((counts - N_DRAWS / 24) ** 2 / (N_DRAWS / 24)).sum().item()
    assert require("scipy.stats").chi2.sf(chi2, df=23) > P_MIN


def test_blur_sigma_matches_torchvision(draws):
    recipe, p = draws
    torch.manual_seed(2)
    ref = torch.tensor([T1.GaussianBlur.get_params(*recipe.blur_sigma) for _ in range(N_DRAWS)])
    assert _ks_2samp(p.sigma, ref) > P_MIN


def test_output_statistics_match_the_cpu_path():
    """End to end on a real-looking image: per-view channel means and contrasts of the batched
    path and the torchvision CPU path come from the same distributions."""
    from contrast.views import cpu_transform

    g = torch.Generator().manual_seed(5)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 32), torch.linspace(0, 1, 32), indexing="ij")
    image = (torch.stack([xx, yy, 1 - xx * yy]) * 200 + 20 + 20 * torch.rand(3, 32, 32, generator=g)).byte()
    n = 1500
    batched = BatchedViews("simclr_cifar10")(image.expand(n, -1, -1, -1), torch.Generator().manual_seed(6))
    torch.manual_seed(7)
    transform = cpu_transform("simclr_cifar10")
    cpu = torch.stack([transform(image) for _ in range(n)])
    for stat in (lambda v: v.mean(dim=(2, 3)), lambda v: v.std(dim=(2, 3))):
        a, b = stat(batched), stat(cpu)
        for channel in range(3):
            assert _ks_2samp(a[:, channel], b[:, channel]) > P_MIN


# ---------------------------------------------------------------------- behaviour
def test_parameters_are_independent_per_sample_unlike_torchvision_v2_on_a_batch():
    image = (_images(1) * 255).byte().expand(8, -1, -1, -1)
    ours = BatchedViews("simclr_cifar10")(image, torch.Generator().manual_seed(0))
    distinct = {tuple(v.flatten()[:64].tolist()) for v in ours}
    assert len(distinct) == 8
    # torchvision v2 on a batched tensor draws one set of parameters for all samples:
    from contrast.views import cpu_transform

    torch.manual_seed(0)
    theirs = cpu_transform("simclr_cifar10")(image)
    assert all(torch.equal(theirs[0], theirs[i]) for i in range(8))


def test_generator_makes_it_reproducible():
    x = (_images(4) * 255).byte()
    views = BatchedViews("moco_v3_cifar10_k")
    a = views(x, torch.Generator().manual_seed(3))
    b = views(x, torch.Generator().manual_seed(3))
    c = views(x, torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize("device", DEVICES)
def test_dtypes_shapes_devices_and_ranges(device):
    u8 = (_images(5, 3, 40, 30) * 255).round().byte().to(device)
    recipe = RECIPES["simclr_cifar10"].with_(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    views = BatchedViews(recipe)
    out_u8 = views(u8, torch.Generator().manual_seed(0))
    out_float = views(u8.float() / 255, torch.Generator().manual_seed(0))
    assert out_u8.shape == (5, 3, 32, 32) and out_u8.dtype == torch.float32 and out_u8.device.type == device
    torch.testing.assert_close(out_u8, out_float)
    assert out_u8.min() >= 0 and out_u8.max() <= 1
    q, k = BatchedTwoViews(("moco_v3_cifar10_q", "moco_v3_cifar10_k"))(u8, torch.Generator().manual_seed(1))
    assert q.shape == k.shape == (5, 3, 32, 32) and not torch.equal(q, k)


def test_grayscale_images_one_channel():
    recipe = RECIPES["simclr_cifar10"].with_(mean=(0.5,), std=(0.5,))
    out = BatchedViews(recipe)((_images(4, 1, 28, 28) * 255).byte(), torch.Generator().manual_seed(0))
    assert out.shape == (4, 1, 32, 32) and torch.isfinite(out).all()


BAD = [
    (lambda v: v(torch.rand(3, 32, 32)), "4-D"),
    (lambda v: v(torch.rand(2, 1, 32, 32)), "3 channels"),
    (lambda v: v(torch.zeros(2, 3, 32, 32, dtype=torch.int32)), "uint8"),
    (lambda v: v(torch.rand(0, 3, 32, 32)), "non-empty"),
    (lambda v: v([1, 2]), "tensor"),
    (lambda v: v.apply(torch.rand(2, 3, 8, 8), v.sample(3, 8, 8)), "params are for 3 samples"),
    (lambda v: Recipe(size=0), "size"),
    (lambda v: Recipe(size=32, crop_scale=(0.5, 0.2)), "crop_scale"),
    (lambda v: Recipe(size=32, flip_p=1.5), "flip_p"),
    (lambda v: Recipe(size=32, blur_p=0.5, blur_kernel=4), "blur_kernel"),
    (lambda v: Recipe(size=32, jitter=(0.4, 0.4, 0.4, 0.7)), "jitter"),
    (lambda v: BatchedViews("simclr_cifar"), "unknown recipe"),
]


@pytest.mark.parametrize("call,message", BAD, ids=[m for _, m in BAD])
def test_bad_input_raises_a_clear_error(call, message):
    with pytest.raises(ValueError, match=message):
        call(BatchedViews("simclr_cifar10"))


def test_the_packed_layout_is_read_by_name():
    from contrast.views.params import ViewParams

    assert ViewParams.columns("boxes", "flip") == [0, 1, 2, 3, 4]
    assert ViewParams.columns("sigma", "solarize") == [16, 17] and len(ViewParams.columns(*ViewParams.FIELDS)) == 18
    params = BatchedViews("moco_v3_k").sample(64, 40, 50, torch.Generator().manual_seed(0))
    packed = params.pack()
    assert torch.equal(packed[:, ViewParams.columns("order")].long(), params.order)
    assert torch.equal(packed[:, ViewParams.columns("sigma")][:, 0], params.sigma)
