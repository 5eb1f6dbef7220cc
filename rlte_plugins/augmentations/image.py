"""Image and observation augmentations (DrQ, RAD, CURL and friends), batched with per-sample randomness.

Every class here is an :class:`~rlte_plugins.augmentations.base.Augmentation`: configurable ``in_keys`` /
``out_keys``, a ``seed`` for a per-device ``torch.Generator``, and dtype/range preservation.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from rlte_plugins.augmentations.base import Augmentation, check_range
from rlte_plugins.errors import ComponentArgumentError, SpecMismatchError, positive_int

_LUMA = (0.299, 0.587, 0.114)


def _gather_window(x: torch.Tensor, top: torch.Tensor, left: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """``x[n, :, top[n]:top[n]+h, left[n]:left[n]+w]`` for every ``n`` at once (exact: integer indexing)."""
    n, c = x.shape[:2]
    rows = (top[:, None] + torch.arange(h, device=x.device)[None, :])[:, None, :, None]
    cols = (left[:, None] + torch.arange(w, device=x.device)[None, :])[:, None, None, :]
    return x[
        torch.arange(n, device=x.device)[:, None, None, None],
        torch.arange(c, device=x.device)[None, :, None, None],
        rows,
        cols,
    ]


def _frames(x: torch.Tensor, channels: int, owner: str) -> torch.Tensor:
    """``[N, S * channels, H, W]`` -> ``[N, S, channels, H, W]`` (a frame stack of RGB or gray frames)."""
    if x.shape[1] % channels:
        raise SpecMismatchError(f"{owner}: {x.shape[1]} channels are not a stack of {channels}-channel frames")
    return x.reshape(x.shape[0], x.shape[1] // channels, channels, *x.shape[2:])


class Identity(Augmentation):
    """No change (the baseline in augmentation comparisons); works on any tensor.

    Examples:
        >>> import torch, rlte_plugins
        >>> from tensordict import TensorDict
        >>> aug = rlte_plugins.make("augmentation", "identity", in_keys=["observation"])
        >>> aug(TensorDict(observation=torch.ones(2, 3), batch_size=[2]))["observation"].tolist()
        [[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]
    """

    registry_name = "identity"
    clamp = False

    def event_dims(self, x: torch.Tensor) -> int:
        return 0

    def augment(self, x: torch.Tensor, vmax: float) -> torch.Tensor:
        return x


class RandomShift(Augmentation):
    """DrQ's augmentation: pad by ``pad`` pixels (replicating the border), then crop back at a random integer
    offset per sample. ``pad=0`` is the identity.

    Examples:
        >>> import torch, rlte_plugins
        >>> from tensordict import TensorDict
        >>> aug = rlte_plugins.make("augmentation", "random_shift", pad=4, seed=0)
        >>> out = aug(TensorDict(pixels=torch.zeros(8, 9, 84, 84, dtype=torch.uint8), batch_size=[8]))
        >>> out["pixels"].shape, out["pixels"].dtype
        (torch.Size([8, 9, 84, 84]), torch.uint8)
    """

    registry_name = "random_shift"

    def __init__(self, pad: int = 4, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        if not isinstance(pad, int) or pad < 0:
            raise ComponentArgumentError(f"{self._owner()}: pad must be a non-negative int, got {pad!r}")
        self.pad = pad

    def augment(self, x: torch.Tensor, vmax: float) -> torch.Tensor:
        if self.pad == 0:
            return x
        n, _, h, w = x.shape
        padded = F.pad(x, (self.pad,) * 4, mode="replicate")
        top = self.randint(0, 2 * self.pad + 1, n, like=x)
        left = self.randint(0, 2 * self.pad + 1, n, like=x)
        return _gather_window(padded, top, left, h, w)


class RandomCrop(Augmentation):
    """A random ``size x size`` window of each image (CURL/RAD); the output is smaller than the input.

    Examples:
        >>> import torch, rlte_plugins
        >>> from tensordict import TensorDict
        >>> aug = rlte_plugins.make("augmentation", "random_crop", size=64, seed=0)
        >>> aug(TensorDict(pixels=torch.zeros(2, 3, 84, 84), batch_size=[2]))["pixels"].shape
        torch.Size([2, 3, 64, 64])
    """

    registry_name = "random_crop"

    def __init__(self, size: int | Sequence[int] = 64, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        hw = (size, size) if isinstance(size, int) else tuple(size)
        if len(hw) != 2 or any(not isinstance(s, int) or s < 1 for s in hw):
            raise ComponentArgumentError(f"{self._owner()}: size must be a positive int or (h, w), got {size!r}")
        self.size = hw

    def augment(self, x: torch.Tensor, vmax: float) -> torch.Tensor:
        n, _, h, w = x.shape
        ch, cw = self.size
        if ch > h or cw > w:
            raise SpecMismatchError(f"{self._owner()}: cannot crop {ch}x{cw} from {h}x{w} images")
        top = self.randint(0, h - ch + 1, n, like=x)
        left = self.randint(0, w - cw + 1, n, like=x)
        return _gather_window(x, top, left, ch, cw)


class RandomTranslate(Augmentation):
    """RAD's translate: each image placed at a random position on a zero ``size x size`` canvas (larger).

    Examples:
        >>> import torch, rlte_plugins
        >>> from tensordict import TensorDict
        >>> aug = rlte_plugins.make("augmentation", "random_translate", size=100, seed=0)
        >>> out = aug(TensorDict(pixels=torch.ones(2, 3, 84, 84), batch_size=[2]))["pixels"]
        >>> out.shape, out.sum().item() == 2 * 3 * 84 * 84
        (torch.Size([2, 3, 100, 100]), True)
    """

    registry_name = "random_translate"

    def __init__(self, size: int = 100, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.size = positive_int(self._owner(), "size", size)

    def augment(self, x: torch.Tensor, vmax: float) -> torch.Tensor:
        n, c, h, w = x.shape
        if self.size < max(h, w):
            raise SpecMismatchError(f"{self._owner()}: canvas {self.size} is smaller than the {h}x{w} images")
        top = self.randint(0, self.size - h + 1, n, like=x)
        left = self.randint(0, self.size - w + 1, n, like=x)
        # scatter by gathering from a padded input: canvas pixel (i, j) reads image pixel (i - top, j - left)
        pad = self.size
        padded = F.pad(x, (pad, pad, pad, pad))
        return _gather_window(padded, pad - top, pad - left, self.size, self.size)


class RandomFlip(Augmentation):
    """Horizontal flip of each image with probability ``p``."""

    registry_name = "random_flip"

    def __init__(self, p: float = 0.5, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.p = check_range(self._owner(), "p", p, 0.0, 1.0)

    def augment(self, x: torch.Tensor, vmax: float) -> torch.Tensor:
        flip = (self.rand(x.shape[0], like=x) < self.p)[:, None, None, None]
        return torch.where(flip, x.flip(-1), x)


class RandomRotate(Augmentation):
    """Rotation of each (square) image by a random multiple of 90 degrees, with probability ``p``."""

    registry_name = "random_rotate"

    def __init__(self, p: float = 0.5, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.p = check_range(self._owner(), "p", p, 0.0, 1.0)

    def augment(self, x: torch.Tensor, vmax: float) -> torch.Tensor:
        if x.shape[-1] != x.shape[-2]:
            raise SpecMismatchError(f"{self._owner()} needs square images, got {x.shape[-2]}x{x.shape[-1]}")
        n = x.shape[0]
        quarter = self.randint(1, 4, n, like=x)
        quarter = torch.where(self.rand(n, like=x) < self.p, quarter, torch.zeros_like(quarter))
        out = x
        for k in (1, 2, 3):
            out = torch.where((quarter == k)[:, None, None, None], torch.rot90(x, k, dims=(-2, -1)), out)
        return out


class RandomCutout(Augmentation):
    """Blanks (zeros) one random rectangle per image, with sides drawn in ``[min_size, max_size]``."""

    registry_name = "random_cutout"
    fill_random = False

    def __init__(self, min_size: int = 10, max_size: int = 30, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        if not (isinstance(min_size, int) and isinstance(max_size, int) and 0 <= min_size <= max_size):
            raise ComponentArgumentError(
                f"{self._owner()}: need 0 <= min_size <= max_size (ints), got {min_size!r}, {max_size!r}"
            )
        self.min_size, self.max_size = min_size, max_size

    def _box(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        hi = min(self.max_size, h, w)
        lo = min(self.min_size, hi)
        bh, bw = self.randint(lo, hi + 1, n, like=x), self.randint(lo, hi + 1, n, like=x)
        top = (self.rand(n, like=x) * (h - bh + 1)).long()
        left = (self.rand(n, like=x) * (w - bw + 1)).long()
        rows = torch.arange(h, device=x.device)[None, :]
        cols = torch.arange(w, device=x.device)[None, :]
        inside_r = (rows >= top[:, None]) & (rows < (top + bh)[:, None])
        inside_c = (cols >= left[:, None]) & (cols < (left + bw)[:, None])
        return (inside_r[:, :, None] & inside_c[:, None, :])[:, None]

    def augment(self, x: torch.Tensor, vmax: float) -> torch.Tensor:
        box = self._box(x)
        fill = self.rand(x.shape[0], x.shape[1], 1, 1, like=x) * vmax if self.fill_random else torch.zeros_like(x)
        return torch.where(box, fill, x)


class RandomCutoutColor(RandomCutout):
    """Fills one random rectangle per image with a random colour (one value per channel)."""

    registry_name = "random_cutout_color"
    fill_random = True


class Grayscale(Augmentation):
    """Luminance (0.299 R + 0.587 G + 0.114 B) of each RGB frame, repeated on its 3 channels so shapes keep.

    A frame stack of ``3 * k`` channels is treated as ``k`` RGB frames; a gray image is left unchanged.
    """

    registry_name = "grayscale"

    def augment(self, x: torch.Tensor, vmax: float) -> torch.Tensor:
        frames = _frames(x, 3, self._owner())
        weights = torch.tensor(_LUMA, device=x.device, dtype=x.dtype)[:, None, None]
        gray = (frames * weights).sum(2, keepdim=True)
        return gray.expand_as(frames).reshape(x.shape)


class ColorJitter(Augmentation):
    """Random brightness, contrast, saturation (factors in ``[1 - a, 1 + a]``) and hue (a rotation of up to
    ``hue`` turns in YIQ space) per image, on RGB frames (stacks of ``3 * k`` channels). All zeros: identity.
    """

    registry_name = "color_jitter"

    def __init__(
        self,
        brightness: float = 0.4,
        contrast: float = 0.4,
        saturation: float = 0.4,
        hue: float = 0.5,
        **kwargs: object,
    ) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        owner = self._owner()
        self.brightness = check_range(owner, "brightness", brightness, 0.0, 1.0)
        self.contrast = check_range(owner, "contrast", contrast, 0.0, 1.0)
        self.saturation = check_range(owner, "saturation", saturation, 0.0, 1.0)
        self.hue = check_range(owner, "hue", hue, 0.0, 0.5)

    def _factor(self, amount: float, n: int, like: torch.Tensor) -> torch.Tensor:
        return (1.0 + (self.rand(n, like=like) * 2.0 - 1.0) * amount)[:, None, None, None, None]

    def augment(self, x: torch.Tensor, vmax: float) -> torch.Tensor:
        f = _frames(x, 3, self._owner())  # [N, S, 3, H, W]
        n = x.shape[0]
        weights = torch.tensor(_LUMA, device=x.device, dtype=x.dtype)[:, None, None]
        if self.brightness:
            f = (f * self._factor(self.brightness, n, x)).clamp(0, vmax)
        if self.contrast:
            mean = (f * weights).sum(2, keepdim=True).mean((-2, -1), keepdim=True)
            f = (mean + (f - mean) * self._factor(self.contrast, n, x)).clamp(0, vmax)
        if self.saturation:
            gray = (f * weights).sum(2, keepdim=True)
            f = (gray + (f - gray) * self._factor(self.saturation, n, x)).clamp(0, vmax)
        if self.hue:
            theta = (self.rand(n, like=x) * 2.0 - 1.0) * self.hue * 2.0 * torch.pi
            f = self._rotate_hue(f, theta)
        return f.reshape(x.shape)

    @staticmethod
    def _rotate_hue(f: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        to_yiq = torch.tensor(
            [[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], device=f.device, dtype=f.dtype
        )
        to_rgb = torch.linalg.inv(to_yiq)
        cos, sin = torch.cos(theta), torch.sin(theta)
        one, zero = torch.ones_like(cos), torch.zeros_like(cos)
        rot = torch.stack([one, zero, zero, zero, cos, -sin, zero, sin, cos], -1).reshape(-1, 3, 3)
        m = to_rgb @ rot @ to_yiq  # [N, 3, 3]
        return torch.einsum("nij,nsjhw->nsihw", m, f)


class RandomConvolution(Augmentation):
    """RAD's random convolution: each image's frames pass through their own random 3x3 convolution (weights
    drawn per sample, Xavier-normal scale), mixing the ``channels`` colour channels of every frame.
    """

    registry_name = "random_convolution"

    def __init__(self, kernel_size: int = 3, channels: int = 3, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        if not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0:
            raise ComponentArgumentError(f"{self._owner()}: kernel_size must be an odd positive int")
        self.kernel_size, self.channels = kernel_size, channels

    def augment(self, x: torch.Tensor, vmax: float) -> torch.Tensor:
        n, c, h, w = x.shape
        f = _frames(x, self.channels, self._owner())  # [N, S, C, H, W]
        s, k, ch = f.shape[1], self.kernel_size, self.channels
        std = (2.0 / (ch * k * k + ch * k * k)) ** 0.5
        weight = self.randn(n, ch, ch, k, k, like=x) * std  # one kernel per sample, shared by its frames
        weight = weight[:, None].expand(n, s, ch, ch, k, k).reshape(n * s * ch, ch, k, k)
        grouped = f.reshape(1, n * s * ch, h, w)
        out = F.conv2d(F.pad(grouped / vmax, (k // 2,) * 4, mode="replicate"), weight, groups=n * s)
        return (out.reshape(n, c, h, w) * vmax).clamp(0, vmax)


class _AnyShape(Augmentation):
    """For augmentations that also fit vectors: a sample is the last dim of a float tensor and ``[C, H, W]`` of a
    ``uint8`` one, unless ``event_dims`` says otherwise. Float results are not clamped."""

    clamp = False

    def __init__(self, event_dims: int | None = None, in_keys: Sequence[str] = ("observation",), **kwargs: object):
        super().__init__(in_keys=in_keys, **kwargs)  # type: ignore[arg-type]
        if event_dims is not None and (not isinstance(event_dims, int) or event_dims < 0):
            raise ComponentArgumentError(f"{self._owner()}: event_dims must be a non-negative int, got {event_dims!r}")
        self._event = event_dims

    def event_dims(self, x: torch.Tensor) -> int:
        return self._event if self._event is not None else (3 if x.dtype == torch.uint8 else 1)


class GaussianNoise(_AnyShape):
    """Adds ``N(0, std)`` noise (``std`` in units of the value range: 0.1 is 25.5 on ``uint8`` pixels).

    Works on vectors as well as images: one sample is the last dim of a float tensor and ``[C, H, W]`` of a
    ``uint8`` one (set ``event_dims`` to override). Float inputs are not clamped.

    Examples:
        >>> import torch, rlte_plugins
        >>> from tensordict import TensorDict
        >>> aug = rlte_plugins.make("augmentation", "gaussian_noise", std=0.0)
        >>> aug(TensorDict(observation=torch.ones(2, 3), batch_size=[2]))["observation"].tolist()
        [[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]
    """

    registry_name = "gaussian_noise"

    def __init__(self, std: float = 0.1, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        if std < 0:
            raise ComponentArgumentError(f"{self._owner()}: std must be non-negative, got {std}")
        self.std = float(std)

    def augment(self, x: torch.Tensor, vmax: float) -> torch.Tensor:
        return x + self.randn(*x.shape, like=x) * (self.std * vmax)


class RandomAmplitudeScaling(_AnyShape):
    """Multiplies each sample by one factor drawn uniformly in ``[low, high]`` (RAD's amplitude scaling)."""

    registry_name = "random_amplitude_scaling"

    def __init__(self, low: float = 0.6, high: float = 1.2, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        if not 0 <= low <= high:
            raise ComponentArgumentError(f"{self._owner()}: need 0 <= low <= high, got {low}, {high}")
        self.low, self.high = float(low), float(high)

    def augment(self, x: torch.Tensor, vmax: float) -> torch.Tensor:
        factor = self.low + self.rand(x.shape[0], like=x) * (self.high - self.low)
        return x * factor.reshape(-1, *([1] * (x.dim() - 1)))
