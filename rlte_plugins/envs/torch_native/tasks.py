"""The torch-native tasks: rl8's dummy tasks and the classic-control episodes, batched on the device."""

from __future__ import annotations

import math

import torch
from torchrl.data import Bounded, Categorical, TensorSpec, Unbounded

from rlte_plugins.envs.torch_native.base import TorchEnv


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


class TorchPendulum(TorchEnv):
    """Pendulum-v1 batched in torch: (cos, sin, angular velocity), a torque in [-2, 2], 200 steps, no failure."""

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


class TorchMountainCar(TorchEnv):
    """MountainCar-v0 batched in torch: (position, velocity), 3 actions, reward -1, 200 steps."""

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
