"""Augmentations: dtype/range kept, per-sample independent, seeded, content-preserving at their identities."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict

import rlte_plugins
from rlte_plugins.errors import ComponentArgumentError, SpecMismatchError

IMAGE_AUGS = [
    ("random_shift", {}),
    ("random_crop", {"size": 24}),
    ("random_translate", {"size": 40}),
    ("random_flip", {}),
    ("random_rotate", {}),
    ("random_cutout", {"min_size": 4, "max_size": 8}),
    ("random_cutout_color", {"min_size": 4, "max_size": 8}),
    ("grayscale", {}),
    ("color_jitter", {}),
    ("random_convolution", {}),
    ("gaussian_noise", {"in_keys": ["pixels"]}),
    ("random_amplitude_scaling", {"in_keys": ["pixels"]}),
    ("identity", {}),
]


def images(n=16, dtype=torch.uint8, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, 6, 32, 32), generator=g, dtype=torch.int64)
    return x.to(dtype) if dtype == torch.uint8 else (x.float() / 255.0)


def run(name, kwargs, x, seed=0):
    aug = rlte_plugins.make("augmentation", name, seed=seed, **kwargs)
    return aug(TensorDict(pixels=x.clone(), batch_size=[x.shape[0]]))["pixels"]


def test_every_augmentation_is_registered_and_listed():
    names = {s.name for s in rlte_plugins.list_components("augmentation")}
    assert {n for n, _ in IMAGE_AUGS} <= names
    assert all(s.summary for s in rlte_plugins.list_components("augmentation"))


@pytest.mark.parametrize("name,kwargs", IMAGE_AUGS, ids=[n for n, _ in IMAGE_AUGS])
def test_dtype_range_and_seeded_determinism(name, kwargs):
    for dtype in (torch.uint8, torch.float32):
        x = images(dtype=dtype)
        out = run(name, kwargs, x)
        assert out.dtype == dtype
        if dtype == torch.uint8 or name not in ("gaussian_noise", "random_amplitude_scaling"):
            top = 255 if dtype == torch.uint8 else 1.0
            assert out.min() >= 0 and out.max() <= top
        assert torch.equal(out, run(name, kwargs, x)), "same seed, same result"
    assert out.shape[:2] == x.shape[:2]


@pytest.mark.parametrize(
    "name,kwargs",
    [(n, k) for n, k in IMAGE_AUGS if n not in ("grayscale", "identity")],
    ids=[n for n, _ in IMAGE_AUGS if n not in ("grayscale", "identity")],
)
def test_randomness_is_per_sample_and_changes_with_the_seed(name, kwargs):
    x = images(1).expand(32, -1, -1, -1).contiguous()  # one image, 32 times
    out = run(name, kwargs, x)
    assert len({tuple(o.flatten().tolist()) for o in out}) > 1, "all samples got the same draw"
    assert not torch.equal(out, run(name, kwargs, x, seed=1))


def test_identities_keep_the_content():
    x = images()
    assert torch.equal(run("random_shift", {"pad": 0}, x), x)
    assert torch.equal(run("random_crop", {"size": 32}, x), x)
    assert torch.equal(run("random_translate", {"size": 32}, x), x)
    assert torch.equal(run("random_flip", {"p": 0.0}, x), x)
    assert torch.equal(run("random_rotate", {"p": 0.0}, x), x)
    assert torch.equal(run("random_cutout", {"min_size": 0, "max_size": 0}, x), x)
    assert torch.equal(run("color_jitter", {"brightness": 0, "contrast": 0, "saturation": 0, "hue": 0}, x), x)
    assert torch.equal(run("gaussian_noise", {"std": 0.0, "in_keys": ["pixels"]}, x), x)
    assert torch.equal(run("random_amplitude_scaling", {"low": 1.0, "high": 1.0, "in_keys": ["pixels"]}, x), x)
    gray = images()[:, :1].expand(-1, 3, -1, -1).repeat(1, 2, 1, 1)  # R = G = B in both frames
    assert torch.equal(run("grayscale", {}, gray), gray)
    assert torch.equal(run("color_jitter", {"brightness": 0, "contrast": 0, "saturation": 0.5, "hue": 0}, gray), gray)


def test_geometric_augmentations_move_pixels_without_changing_them():
    x = images()
    shifted = run("random_shift", {"pad": 2}, x)
    # the centre of a shifted image is a window of the original
    n = 0
    for i in range(x.shape[0]):
        found = any(
            torch.equal(shifted[i, :, 2:-2, 2:-2], x[i, :, 2 + dy : 30 + dy, 2 + dx : 30 + dx])
            for dy in range(-2, 3)
            for dx in range(-2, 3)
        )
        n += found
    assert n == x.shape[0]
    crop = run("random_crop", {"size": 20}, x)
    assert all(
        any(torch.equal(crop[i], x[i, :, t : t + 20, s : s + 20]) for t in range(13) for s in range(13))
        for i in range(4)
    )
    rot = run("random_rotate", {"p": 1.0}, x)
    assert all(any(torch.equal(rot[i], torch.rot90(x[i], k, (-2, -1))) for k in (1, 2, 3)) for i in range(16))
    flip = run("random_flip", {"p": 1.0}, x)
    assert torch.equal(flip, x.flip(-1))
    translated = run("random_translate", {"size": 40}, x)
    assert torch.equal(translated.long().sum((1, 2, 3)), x.long().sum((1, 2, 3)))


def test_cutout_changes_only_one_rectangle():
    x = torch.full((8, 3, 32, 32), 200, dtype=torch.uint8)
    out = run("random_cutout", {"min_size": 5, "max_size": 5}, x)
    changed = (out != x).any(1)
    assert (changed.sum((1, 2)) == 25).all()
    assert (out[(out != x)] == 0).all()


def test_leading_batch_dims_and_vectors():
    x = images(12).reshape(3, 4, 6, 32, 32)
    assert run("random_shift", {}, x).shape == x.shape
    vec = torch.randn(5, 7)
    out = rlte_plugins.make("augmentation", "random_amplitude_scaling", seed=0)(
        TensorDict(observation=vec, batch_size=[5])
    )
    ratio = out["observation"] / vec
    assert torch.allclose(ratio, ratio[:, :1].expand_as(ratio), atol=1e-5)  # one factor per sample
    assert ratio.min() >= 0.6 - 1e-6 and ratio.max() <= 1.2 + 1e-6


def test_bad_input_refused():
    with pytest.raises(SpecMismatchError, match="images"):
        run("random_shift", {}, torch.zeros(4, 7))
    with pytest.raises(SpecMismatchError, match="crop 40x40"):
        run("random_crop", {"size": 40}, images())
    with pytest.raises(SpecMismatchError, match="3-channel"):
        run("grayscale", {}, torch.zeros(2, 4, 8, 8, dtype=torch.uint8))
    with pytest.raises(ComponentArgumentError, match="pad"):
        rlte_plugins.make("augmentation", "random_shift", pad=-1)
    with pytest.raises(ComponentArgumentError, match="unexpected argument 'sed'"):
        rlte_plugins.make("augmentation", "random_shift", sed=1)


def test_other_keys_and_out_keys():
    td = TensorDict(pixels=images(), other=images(), batch_size=[16])
    aug = rlte_plugins.make("augmentation", "random_flip", p=1.0, in_keys=["pixels"], out_keys=["flipped"])
    out = aug(td)
    assert torch.equal(out["pixels"], td["other"]) and torch.equal(out["flipped"], td["other"].flip(-1))


def test_module_apply_reaches_an_augmentation_in_a_module_tree():
    # torch's Module.apply(fn) visits every submodule: an augmentation's own method must not shadow it
    tree = torch.nn.Sequential(rlte_plugins.make("augmentation", "random_shift", in_keys=["pixels"]))
    seen = []
    tree.apply(seen.append)
    assert len(seen) == 2
