"""Rasterising a torch-native task's state with tensor operations: soft-edged shapes on a square canvas.

Every shape is a distance field over the pixel grid, turned into a coverage in [0, 1] that falls off over one
pixel, so edges are anti-aliased and a sub-pixel move still changes the picture. All of it is elementwise work
over ``[n, H, W]``, on the env's device, with nothing read back to the host.
"""

from __future__ import annotations

import torch

#: A world coordinate: one per env (``[n]``) or one for all.
Coordinate = torch.Tensor | float


class Canvas:
    """A ``size`` x ``size`` view of the world box ``[x_low, x_low + width] x [y_low, y_low + width]`` (y up).

    Args:
        size: pixels per side.
        x_low, y_low: the world coordinates of the bottom-left corner.
        width: the world length of a side (pixels are square).
        palette: RGB colours (0-255) by part name; ``"background"`` fills the canvas.
        device: where the pixel grid lives.

    Shapes take world coordinates and sizes; :attr:`x` and :attr:`y` are the world coordinates of the pixel
    centres (``[1, 1, W]`` and ``[1, H, 1]``) for fields of a task's own (:meth:`coverage` turns them into
    coverages).
    """

    def __init__(
        self,
        size: int,
        x_low: float,
        y_low: float,
        width: float,
        palette: dict[str, tuple[int, int, int]],
        device: torch.device,
    ) -> None:
        self.size = size
        self.scale = size / width  # pixels per world unit
        centres = torch.arange(size, dtype=torch.float32, device=device) + 0.5
        # the shapes measure in pixels (no rescaling pass over [n, H, W]), from the world origin
        self._x = (x_low * self.scale + centres).reshape(1, 1, size)  # columns, left to right
        self._y = ((y_low + width) * self.scale - centres).reshape(1, size, 1)  # rows, top (row 0) to bottom
        self.x, self.y = self._x / self.scale, self._y / self.scale
        # + 0.5: the conversion to uint8 truncates, so every shade rounds to the nearest level
        self.palette = {name: tuple(float(v) + 0.5 for v in rgb) for name, rgb in palette.items()}

    def coverage(self, distance: torch.Tensor) -> torch.Tensor:
        """How much of each pixel a shape covers, from its signed distance in world units (negative inside)."""
        return (0.5 - distance * self.scale).clamp_(0.0, 1.0)

    def _cover(self, pixels: torch.Tensor, radius: float) -> torch.Tensor:
        """Coverage of the pixels within ``radius`` (world units) of a shape, from their distance in pixels."""
        return (radius * self.scale + 0.5 - pixels).clamp_(0.0, 1.0)

    def segment(
        self, x0: Coordinate, y0: Coordinate, x1: Coordinate, y1: Coordinate, half_width: float
    ) -> torch.Tensor:
        """Coverage of a thick line with round ends from ``(x0, y0)`` to ``(x1, y1)`` (``[n]`` tensors or floats,
        the far end a tensor)."""
        s = self.scale
        x0, y0, x1, y1 = (_column(v) for v in (x0, y0, x1, y1))
        dx, dy = (x1 - x0) * s, (y1 - y0) * s
        length = _norm(dx, dy).clamp_min(1e-6)
        ux, uy = dx / length, dy / length
        px, py = self._x - x0 * s, self._y - y0 * s  # [n, 1, W] and [n, H, 1]
        along = px * ux + py * uy  # [n, H, W]: along the line and across it
        across = px * uy - py * ux
        return self._cover(_norm(across, along - along.clamp(max=length).clamp_(min=0.0)), half_width)

    def box(self, cx: Coordinate, cy: Coordinate, half_x: float, half_y: float) -> torch.Tensor:
        """Coverage of an axis-aligned rectangle centred at ``(cx, cy)`` (``[n]`` tensors or floats)."""
        s = self.scale
        qx = (self._x - _column(cx) * s).abs() - half_x * s  # [n, 1, W]: no [n, H, W] work before the max
        qy = (self._y - _column(cy) * s).abs() - half_y * s  # [n, H, 1]
        return self._cover(torch.maximum(qx, qy), 0.0)

    def disc(self, cx: Coordinate, cy: Coordinate, radius: float) -> torch.Tensor:
        """Coverage of a disc centred at ``(cx, cy)`` (``[n]`` tensors or floats)."""
        s = self.scale
        return self._cover(_norm(self._x - _column(cx) * s, self._y - _column(cy) * s), radius)

    def draw(self, *layers: tuple[torch.Tensor, str]) -> torch.Tensor:
        """``uint8`` RGB frames, ``[n, 3, H, W]``: the background with each ``(coverage, part)`` laid over it in
        turn (the last on top), in ``part``'s colour."""
        # channel by channel, with the colours as Python numbers: every operation is one vectorised pass over
        # [n, H, W] (ops broadcasting [1, 3, 1, 1] colours over [n, 1, H, W] are several times slower on a CPU),
        # and, compiled, one loop computes each coverage once for the three channels
        channels = []
        for c in range(3):
            shade: torch.Tensor | float = self.palette["background"][c]
            for coverage, part in layers:
                shade = shade + coverage * (self.palette[part][c] - shade)
            channels.append(shade.to(torch.uint8))  # type: ignore[union-attr]
        return torch.stack(channels, 1)


def _column(value: Coordinate) -> Coordinate:
    """``[n]`` -> ``[n, 1, 1]``, against the ``[1, H, W]`` grid; a float as it is."""
    return value.reshape(-1, 1, 1) if isinstance(value, torch.Tensor) else value


def _norm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``hypot(a, b)`` for the small lengths here: as fast eagerly, and compiled it fuses into a few
    instructions where ``torch.hypot`` becomes a library call per element (four times slower on a CPU)."""
    return (a * a + b * b).sqrt()
