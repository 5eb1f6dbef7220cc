"""The torch-native tasks: rl8's dummy tasks and the classic-control episodes, batched on the device."""

from __future__ import annotations

import math

import torch
from torchrl.data import Bounded, Categorical, TensorSpec, Unbounded

from rlte_plugins.envs.torch_native.base import TorchEnv
from rlte_plugins.envs.torch_native.render import Canvas


class DummyDiscrete(TorchEnv):
    """rl8's discrete dummy task: a 1-D state moved by +-1, reward -|state|; no end (``max_episode_steps`` to add one).

    Examples:
        >>> import rlte_plugins
        >>> env = rlte_plugins.make("env", "dummy_discrete", num_envs=3, seed=0)
        >>> env.rollout(4)["next", "reward"].shape
        torch.Size([3, 4, 1])
    """

    name = "dummy_discrete"
    bounds = 100.0

    def action_spec_for(self, num_envs: int, device: torch.device) -> TensorSpec:
        return Categorical(2, shape=(num_envs,), dtype=torch.int64, device=device)

    def initial_state(self, n: int) -> torch.Tensor:
        return self.uniform(n, 1, low=-self.bounds, high=self.bounds)

    def dynamics(self, state: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        state = state + (2 * action.reshape(-1, 1) - 1).to(state.dtype)
        return state, -state.abs(), torch.zeros_like(state, dtype=torch.bool)


class DummyContinuous(DummyDiscrete):
    """rl8's continuous dummy task: a 1-D state moved by the action, reward -|state|; no end."""

    name = "dummy_continuous"

    def action_spec_for(self, num_envs: int, device: torch.device) -> TensorSpec:
        return Unbounded(shape=(num_envs, 1), dtype=torch.float32, device=device)

    def dynamics(self, state: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        state = state + action.reshape(-1, 1).to(state.dtype)
        return state, -state.abs(), torch.zeros_like(state, dtype=torch.bool)


class TorchCartPole(TorchEnv):
    """CartPole-v1 (gymnasium's dynamics, Euler steps) batched in torch: 4 floats, 2 actions, 500 steps.

    Takes :class:`~rlte_plugins.envs.torch_native.base.TorchEnv`'s arguments. Its pixels show the cart (a blue
    box) on a grey track and the pole (an orange bar) at its angle, 5.4 world units across.

    Examples:
        >>> import rlte_plugins
        >>> env = rlte_plugins.make("env", "torch_cartpole", num_envs=2, seed=0)
        >>> env.rollout(3)["next", "observation"].shape
        torch.Size([2, 3, 4])
    """

    name = "torch_cartpole"
    obs_dim = 4
    default_max_steps = 500
    gravity, masscart, masspole, length, force_mag, tau = 9.8, 1.0, 0.1, 0.5, 10.0, 0.02
    theta_limit = 12 * 2 * math.pi / 360
    x_limit = 2.4

    def action_spec_for(self, num_envs: int, device: torch.device) -> TensorSpec:
        return Categorical(2, shape=(num_envs,), dtype=torch.int64, device=device)

    def initial_state(self, n: int) -> torch.Tensor:
        return self.uniform(n, 4, low=-0.05, high=0.05)

    def dynamics(self, state: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x, x_dot, theta, theta_dot = state.unbind(-1)
        force = (2 * action.reshape(-1).to(state.dtype) - 1) * self.force_mag
        total_mass = self.masspole + self.masscart
        polemass_length = self.masspole * self.length
        cos, sin = torch.cos(theta), torch.sin(theta)
        temp = (force + polemass_length * theta_dot**2 * sin) / total_mass
        theta_acc = (self.gravity * sin - cos * temp) / (
            self.length * (4.0 / 3.0 - self.masspole * cos**2 / total_mass)
        )
        x_acc = temp - polemass_length * theta_acc * cos / total_mass
        x = x + self.tau * x_dot
        x_dot = x_dot + self.tau * x_acc
        theta = theta + self.tau * theta_dot
        theta_dot = theta_dot + self.tau * theta_acc
        state = torch.stack((x, x_dot, theta, theta_dot), -1)
        terminated = (x.abs() > self.x_limit) | (theta.abs() > self.theta_limit)
        return state, torch.ones_like(x), terminated

    palette = {"background": (255, 255, 255), "track": (90, 90, 90), "cart": (50, 90, 180), "pole": (202, 152, 101)}
    cart_half_width, cart_half_height, pole_half_width = 0.25, 0.15, 0.08

    def canvas(self, image_size: int, device: torch.device) -> Canvas:
        return Canvas(image_size, -2.7, -2.7, 5.4, self.palette, device)  # centred on the cart

    def render(self, state: torch.Tensor) -> torch.Tensor:
        c = self._canvas
        x, theta = state[:, 0], state[:, 2]
        track = c.coverage((c.y + self.cart_half_height).abs() - 0.02)  # [1, H, 1]: the same for every env
        cart = c.box(x, 0.0, self.cart_half_width, self.cart_half_height)
        tip_x, tip_y = x + 2 * self.length * torch.sin(theta), 2 * self.length * torch.cos(theta)
        pole = c.segment(x, 0.0, tip_x, tip_y, self.pole_half_width)
        return c.draw((track, "track"), (cart, "cart"), (pole, "pole"))


class TorchPendulum(TorchEnv):
    """Pendulum-v1 batched in torch: (cos, sin, angular velocity), a torque in [-2, 2], 200 steps, no failure.

    Takes :class:`~rlte_plugins.envs.torch_native.base.TorchEnv`'s arguments. Its pixels show the rod (red) from
    the pivot (a black dot at the centre) at its angle, upright at angle 0, as gymnasium draws it; one frame
    gives the angle, a stack of them the speed.

    Examples:
        >>> import rlte_plugins
        >>> env = rlte_plugins.make(
        ...     "env", "torch_pendulum", num_envs=4, seed=0, from_pixels=True, image_size=32, frame_stack=3,
        ...     action_repeat=2,
        ... )
        >>> td = env.rollout(5)
        >>> td["next", "pixels"].shape, td["next", "pixels"].dtype, "observation" in td.keys()
        (torch.Size([4, 5, 9, 32, 32]), torch.uint8, False)
    """

    name = "torch_pendulum"
    obs_dim = 3
    default_max_steps = 200
    max_speed, max_torque, dt, g, m, l = 8.0, 2.0, 0.05, 10.0, 1.0, 1.0  # noqa: E741

    def action_spec_for(self, num_envs: int, device: torch.device) -> TensorSpec:
        return Bounded(-self.max_torque, self.max_torque, shape=(num_envs, 1), dtype=torch.float32, device=device)

    def initial_state(self, n: int) -> torch.Tensor:
        return torch.cat((self.uniform(n, 1, low=-math.pi, high=math.pi), self.uniform(n, 1, low=-1.0, high=1.0)), -1)

    def observe(self, state: torch.Tensor) -> torch.Tensor:
        return torch.stack((torch.cos(state[:, 0]), torch.sin(state[:, 0]), state[:, 1]), -1)

    def dynamics(self, state: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        th, thdot = state.unbind(-1)
        u = action.reshape(-1).to(state.dtype).clamp(-self.max_torque, self.max_torque)
        angle = torch.remainder(th + math.pi, 2 * math.pi) - math.pi
        cost = angle**2 + 0.1 * thdot**2 + 0.001 * u**2
        thdot = thdot + (3 * self.g / (2 * self.l) * torch.sin(th) + 3.0 / (self.m * self.l**2) * u) * self.dt
        thdot = thdot.clamp(-self.max_speed, self.max_speed)
        th = th + thdot * self.dt
        return torch.stack((th, thdot), -1), -cost, torch.zeros_like(th, dtype=torch.bool)

    palette = {"background": (255, 255, 255), "rod": (204, 77, 77), "pivot": (0, 0, 0)}

    def canvas(self, image_size: int, device: torch.device) -> Canvas:
        return Canvas(image_size, -2.2, -2.2, 4.4, self.palette, device)

    def render(self, state: torch.Tensor) -> torch.Tensor:
        c, th = self._canvas, state[:, 0]
        rod = c.segment(0.0, 0.0, -self.l * torch.sin(th), self.l * torch.cos(th), 0.1)
        return c.draw((rod, "rod"), (c.disc(0.0, 0.0, 0.05), "pivot"))


class TorchMountainCar(TorchEnv):
    """MountainCar-v0 batched in torch: (position, velocity), 3 actions, reward -1, 200 steps.

    Takes :class:`~rlte_plugins.envs.torch_native.base.TorchEnv`'s arguments. Its pixels show the hill (green,
    ``0.45 sin(3x) + 0.55`` over the whole track) and the car (a dark disc) on it at its position.
    """

    name = "torch_mountain_car"
    obs_dim = 2
    default_max_steps = 200
    min_position, max_position, max_speed, goal_position, force, gravity = -1.2, 0.6, 0.07, 0.5, 0.001, 0.0025

    def action_spec_for(self, num_envs: int, device: torch.device) -> TensorSpec:
        return Categorical(3, shape=(num_envs,), dtype=torch.int64, device=device)

    def initial_state(self, n: int) -> torch.Tensor:
        position = self.uniform(n, 1, low=-0.6, high=-0.4)
        return torch.cat((position, torch.zeros_like(position)), -1)

    def dynamics(self, state: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        position, velocity = state.unbind(-1)
        velocity = velocity + (action.reshape(-1).to(state.dtype) - 1) * self.force
        velocity = (velocity - torch.cos(3 * position) * self.gravity).clamp(-self.max_speed, self.max_speed)
        position = (position + velocity).clamp(self.min_position, self.max_position)
        velocity = torch.where((position == self.min_position) & (velocity < 0), torch.zeros_like(velocity), velocity)
        terminated = (position >= self.goal_position) & (velocity >= 0)
        return torch.stack((position, velocity), -1), -torch.ones_like(position), terminated

    palette = {"background": (255, 255, 255), "hill": (110, 160, 90), "car": (40, 40, 40)}
    car_radius = 0.06

    def canvas(self, image_size: int, device: torch.device) -> Canvas:
        return Canvas(image_size, self.min_position, -0.2, self.max_position - self.min_position, self.palette, device)

    def render(self, state: torch.Tensor) -> torch.Tensor:
        c, position = self._canvas, state[:, 0]
        # the height above the hill, scaled to a distance from it (to first order), for an even soft edge
        above = (c.y - self.height(c.x)) / torch.sqrt(1 + (1.35 * torch.cos(3 * c.x)) ** 2)
        car = c.disc(position, self.height(position) + self.car_radius, self.car_radius)
        return c.draw((c.coverage(above), "hill"), (car, "car"))

    @staticmethod
    def height(position: torch.Tensor) -> torch.Tensor:
        return 0.45 * torch.sin(3 * position) + 0.55


class TorchPointMass(TorchEnv):
    """A point mass pushed by a 2-D force in a walled square, rewarded for staying near its centre (DeepMind
    Control's ``point_mass`` with a dense reward): the fastest continuous task to learn from pixels.

    State: position in ``[-0.3, 0.3]^2`` and velocity; action: a force in ``[-1, 1]^2``; reward ``1 - distance /
    0.3`` (clamped at 0) each step; 200 steps, no failure. The walls stop the mass (the velocity into a wall is
    zeroed). Its pixels show the mass (a blue disc) and the centre it aims for (a grey ring); one frame gives the
    position, a stack of them the velocity.

    Examples:
        >>> import rlte_plugins
        >>> env = rlte_plugins.make("env", "torch_point_mass", num_envs=2, seed=0, from_pixels=True, image_size=24)
        >>> env.rollout(3)["next", "pixels"].shape
        torch.Size([2, 3, 3, 24, 24])
    """

    name = "torch_point_mass"
    obs_dim = 4
    default_max_steps = 200
    half_width, dt, gain, damping, radius = 0.3, 0.05, 2.0, 1.0, 0.05

    def action_spec_for(self, num_envs: int, device: torch.device) -> TensorSpec:
        return Bounded(-1.0, 1.0, shape=(num_envs, 2), dtype=torch.float32, device=device)

    def initial_state(self, n: int) -> torch.Tensor:
        start = self.half_width - self.radius
        return torch.cat((self.uniform(n, 2, low=-start, high=start), torch.zeros(n, 2, device=self.device)), -1)

    def dynamics(self, state: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        position, velocity = state[:, :2], state[:, 2:]
        force = action.reshape(-1, 2).to(state.dtype).clamp(-1.0, 1.0)
        velocity = velocity + (self.gain * force - self.damping * velocity) * self.dt
        moved = position + velocity * self.dt
        position = moved.clamp(-self.half_width, self.half_width)
        velocity = torch.where(moved == position, velocity, torch.zeros_like(velocity))
        distance = torch.sqrt((position**2).sum(-1))
        reward = (1.0 - distance / self.half_width).clamp_min(0.0)
        return torch.cat((position, velocity), -1), reward, torch.zeros_like(distance, dtype=torch.bool)

    palette = {"background": (235, 235, 235), "target": (150, 150, 150), "mass": (40, 80, 200)}

    def canvas(self, image_size: int, device: torch.device) -> Canvas:
        side = self.half_width + self.radius
        return Canvas(image_size, -side, -side, 2 * side, self.palette, device)

    def render(self, state: torch.Tensor) -> torch.Tensor:
        c = self._canvas
        ring = c.coverage((torch.sqrt(c.x**2 + c.y**2) - 0.04).abs() - 0.008)
        return c.draw((ring, "target"), (c.disc(state[:, 0], state[:, 1], self.radius), "mass"))


class TorchDeepSea(TorchEnv):
    """Deep Sea (Osband et al., 2019, "Behaviour Suite for Reinforcement Learning"): a hard-exploration grid,
    batched in torch.

    The agent starts at the top-left of a ``size x size`` grid and descends one row per step, moving left or right
    (which action means right is drawn per cell once, from ``mapping_seed``, as bsuite does, so "always the same
    action" does not solve it). Every move right costs ``0.01 / size``; moving right from the bottom-right cell (the
    last move of the one path that goes right every time) pays 1. An episode lasts ``size`` steps and terminates.
    Random actions find the reward with probability ``2 ** -size``: dithering exploration fails from ``size`` ~ 12,
    a directed bonus does not. The observation is the one-hot cell (``size * size`` floats).

    Examples:
        >>> import rlte_plugins, torch
        >>> env = rlte_plugins.make("env", "torch_deep_sea", size=4, num_envs=2, seed=0)
        >>> right = env.right  # the action that moves right, per (row, column)
        >>> td = env.reset()
        >>> total = torch.zeros(2)
        >>> for row in range(4):
        ...     td["action"] = right[row, row].expand(2).clone()
        ...     td = env.step(td)
        ...     total += td["next", "reward"].squeeze(-1)
        ...     td = td["next"]
        >>> total.tolist(), td["terminated"].squeeze(-1).tolist()
        ([0.9900000095367432, 0.9900000095367432], [True, True])
    """

    name = "torch_deep_sea"

    def __init__(self, size: int = 10, mapping_seed: int = 0, **kwargs: object) -> None:
        from rlte_plugins.errors import positive_int

        self.size = positive_int(f"env {self.name!r}", "size", size)
        self.obs_dim = self.size * self.size
        mapping = torch.randint(0, 2, (self.size, self.size), generator=torch.Generator().manual_seed(mapping_seed))
        kwargs.setdefault("max_episode_steps", 0)  # the episode ends by itself after `size` steps
        self._mapping = mapping
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.right = mapping.to(self.device)

    def action_spec_for(self, num_envs: int, device: torch.device) -> TensorSpec:
        return Categorical(2, shape=(num_envs,), dtype=torch.int64, device=device)

    def initial_state(self, n: int) -> torch.Tensor:
        return torch.zeros(n, 2, device=self.device)  # (row, column)

    def dynamics(self, state: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        row, col = state.long().unbind(-1)
        right = action.reshape(-1).long() == self._mapping.to(state.device)[row, col]
        # bsuite's treasure: moving right from the last column on the last row (a path that ends there otherwise,
        # after a free move left at the wall, pays nothing)
        treasure = right & (col == self.size - 1) & (row == self.size - 1)
        reward = torch.where(right, -0.01 / self.size, 0.0) + treasure.float()
        col = torch.where(right, (col + 1).clamp(max=self.size - 1), (col - 1).clamp(min=0))
        row = row + 1
        return torch.stack((row, col), -1).float(), reward, row >= self.size

    def observe(self, state: torch.Tensor) -> torch.Tensor:
        row, col = state.long().unbind(-1)
        cell = (row.clamp(max=self.size - 1) * self.size + col).long()
        return torch.nn.functional.one_hot(cell, self.size * self.size).float()
