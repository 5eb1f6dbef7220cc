"""Atari 2600 games (ALE) with the standard DQN/PPO preprocessing, on EnvPool or on gymnasium + ale-py."""

from __future__ import annotations

import re
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from rlte_plugins.envs.backends import require
from rlte_plugins.envs.core import BatchedEnv, check_choice, check_num_envs
from rlte_plugins.envs.envpool import EnvPoolEnv
from rlte_plugins.errors import ComponentArgumentError, EnvironmentNotFoundError, positive_int

FAMILY = "atari"


def game_name(game: str) -> str:
    """The ALE game name: ``"pong"``, ``"Pong-v5"``, ``"ALE/Pong-v5"`` -> ``"Pong"``; ``"space_invaders"`` ->
    ``"SpaceInvaders"``."""
    name = re.sub(r"^ALE/|-v\d+$|NoFrameskip|Deterministic", "", game.strip())
    if "_" in name or name.islower():
        name = "".join(part[:1].upper() + part[1:] for part in name.split("_"))
    return name


def make_atari(
    game: str,
    num_envs: int = 8,
    seed: int | None = None,
    device: str | torch.device = "cpu",
    backend: str = "auto",
    noop_max: int = 30,
    frame_skip: int = 4,
    episodic_life: bool = True,
    fire_reset: bool = True,
    image_size: int = 84,
    grayscale: bool = True,
    frame_stack: int = 4,
    clip_rewards: bool = True,
    repeat_action_probability: float = 0.25,
    full_action_space: bool = False,
    max_episode_steps: int = 27_000,
    num_threads: int = 0,
) -> BatchedEnv:
    """An Atari game with DQN/PPO preprocessing (84x84 gray, skip 4 with max-pool, stack 4), batched.

    Frames are skipped exactly once: the ALE env is made with ``frameskip=1`` and the skip (with max-pooling
    of the last two frames) is done by the preprocessing, so a ``*-v5`` id never skips 16 frames.
    ``"pixels"`` is ``uint8`` ``[frame_stack * channels, image_size, image_size]``.

    Args:
        game: the game, e.g. ``"Pong"``, ``"pong"``, ``"Pong-v5"`` or ``"ALE/Pong-v5"``.
        num_envs, seed, device: as every rlte env.
        backend: ``"envpool"`` (C++, fastest), ``"gymnasium"`` (ale-py through gymnasium) or ``"auto"``
            (EnvPool when installed).
        noop_max: up to this many random no-ops after a reset.
        frame_skip: agent steps last this many frames; the observation is the max of the last two.
        episodic_life: a lost life is ``terminated`` for training (the value is not bootstrapped through it),
            but the game goes on; ``episode_reward``/``episode_length``/``episode_end`` follow the whole game.
        fire_reset: press FIRE after every reset in games that need it to start.
        image_size: frames are resized to ``image_size x image_size``.
        grayscale: luminance frames (1 channel) rather than RGB (3).
        frame_stack: the last this many frames, stacked on the channel axis.
        clip_rewards: ``"reward"`` is the sign of the game's reward (training only: the episode statistics keep
            the score). Make evaluation envs with ``clip_rewards=False``.
        repeat_action_probability: sticky actions (0.25 is the ``v5`` standard; 0 for the deterministic game).
        full_action_space: all 18 actions instead of the game's minimal set.
        max_episode_steps: episodes are truncated after this many agent steps (27,000 = 108,000 frames).
        num_threads: EnvPool worker threads (0: one per core).

    Examples:
        >>> import rlte_plugins
        >>> env = rlte_plugins.make("env", "atari", game="Pong", num_envs=2, seed=0)
        >>> env.rollout(2)["next", "pixels"].shape
        torch.Size([2, 2, 4, 84, 84])
    """
    check_num_envs(FAMILY, num_envs)
    check_choice(FAMILY, "backend", backend, ("auto", "envpool", "gymnasium"))
    for arg, value in (("frame_skip", frame_skip), ("frame_stack", frame_stack), ("image_size", image_size)):
        positive_int("env 'atari'", arg, value)
    if not 0.0 <= repeat_action_probability <= 1.0:
        raise ComponentArgumentError(
            f"env 'atari': repeat_action_probability must be in [0, 1], got {repeat_action_probability!r}"
        )
    name = game_name(game)
    if backend == "auto":
        try:
            envpool = require("envpool", FAMILY)
            backend = "envpool" if f"{name}-v5" in envpool.list_all_envs() else "gymnasium"
        except ImportError:
            backend = "gymnasium"
    if backend == "envpool":
        return _envpool_atari(name, num_envs, seed, device, locals())
    return _gymnasium_atari(name, num_envs, seed, device, locals())


def _envpool_atari(name: str, num_envs: int, seed: int | None, device: Any, a: dict[str, Any]) -> BatchedEnv:
    env = AtariEnvPool(
        f"{name}-v5",
        num_envs,
        seed,
        device,
        family=FAMILY,
        num_threads=a["num_threads"],
        clip_rewards=a["clip_rewards"],
        episodic_life=a["episodic_life"],
        envpool_kwargs=dict(
            noop_max=a["noop_max"],
            frame_skip=a["frame_skip"],
            # EnvPool's own episodic life only works through its next-step auto-reset (an explicit reset
            # starts a new game), so lives are followed here instead
            episodic_life=False,
            use_fire_reset=a["fire_reset"],
            img_height=a["image_size"],
            img_width=a["image_size"],
            gray_scale=a["grayscale"],
            stack_num=a["frame_stack"],
            reward_clip=False,  # clipped here, so the episode statistics keep the score
            repeat_action_probability=a["repeat_action_probability"],
            full_action_space=a["full_action_space"],
            max_episode_steps=a["max_episode_steps"],
        ),
    )
    env.frame_channels = 1 if a["grayscale"] else 3  # the newest frame of the stack, for videos
    return env


class AtariEnvPool(EnvPoolEnv):
    """EnvPool Atari that reports ``info["life_lost"]`` (the batched env turns it into episodic life)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lives = np.zeros(self.num_envs, dtype=np.int64)

    def _on_reset(self, ids: np.ndarray, info: Any) -> None:
        self._lives[ids] = np.asarray(info["lives"])

    def _backend_step(self, action: np.ndarray) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, Any]:
        obs, reward, terminated, truncated, info = super()._backend_step(action)
        lives = np.asarray(info["lives"])
        info["life_lost"] = (lives < self._lives) & (lives > 0)
        self._lives = lives.astype(np.int64)
        return obs, reward, terminated, truncated, info


def _gymnasium_atari(name: str, num_envs: int, seed: int | None, device: Any, a: dict[str, Any]) -> BatchedEnv:
    from rlte_plugins.envs.gymnasium import VectorEnvAdapter

    ale_py = require("ale-py", FAMILY)
    gym.register_envs(ale_py)
    env_id = f"ALE/{name}-v5"
    if env_id not in gym.registry:
        raise EnvironmentNotFoundError(f"env 'atari': ale-py has no game {name!r} (ids like 'ALE/Pong-v5')")

    def make_one() -> Any:
        env = gym.make(
            env_id,
            frameskip=1,  # the preprocessing skips; a v5 id's own frameskip=4 would make it 16
            repeat_action_probability=a["repeat_action_probability"],
            full_action_space=a["full_action_space"],
            max_num_frames_per_episode=a["max_episode_steps"] * a["frame_skip"],
        )
        env = gym.wrappers.AtariPreprocessing(
            env,
            noop_max=a["noop_max"],
            frame_skip=a["frame_skip"],
            screen_size=a["image_size"],
            terminal_on_life_loss=False,
            grayscale_obs=a["grayscale"],
            scale_obs=False,
        )
        env = LifeLoss(env)
        if a["fire_reset"] and "FIRE" in env.unwrapped.get_action_meanings()[1:2]:
            env = FireReset(env)
        env = ChannelStack(env, a["frame_stack"])
        return gym.wrappers.TimeLimit(env, a["max_episode_steps"])

    vec = VectorEnvAdapter.vector([make_one] * num_envs)
    env = VectorEnvAdapter(
        vec,
        family=FAMILY,
        seed=seed,
        device=device,
        pixel_layout="chw",
        clip_rewards=a["clip_rewards"],
        episodic_life=a["episodic_life"],
    )
    env.frame_channels = 1 if a["grayscale"] else 3  # videos draw through ale-py, or else show the newest frame
    return env


class LifeLoss(gym.Wrapper):
    """Sets ``info["life_lost"]`` at a step that lost a life; the batched env makes that episodic life.

    The game is never reset at a lost life (gymnasium's ``terminal_on_life_loss`` resets the whole game
    after each life, which changes the task).
    """

    def __init__(self, env: Any) -> None:
        super().__init__(env)
        self._lives = 0

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        lives = self.env.unwrapped.ale.lives()
        info["life_lost"] = 0 < lives < self._lives
        self._lives = lives
        return obs, reward, terminated, truncated, info

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        obs, info = self.env.reset(seed=seed, options=options)
        self._lives = self.env.unwrapped.ale.lives()
        return obs, info


class FireReset(gym.Wrapper):
    """Press FIRE once after each reset (games such as Breakout do not start without it)."""

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        self.env.reset(seed=seed, options=options)
        obs, _, terminated, truncated, info = self.env.step(1)
        if terminated or truncated:
            obs, info = self.env.reset(options=options)
        return obs, info


class ChannelStack(gym.Wrapper):
    """The last ``k`` frames concatenated on a leading channel axis: ``[k * C, H, W]`` ``uint8``."""

    def __init__(self, env: Any, k: int) -> None:
        super().__init__(env)
        shape = env.observation_space.shape
        self._channels = 1 if len(shape) == 2 else shape[2]
        h, w = shape[:2]
        self.k = k
        self._frames = np.zeros((k * self._channels, h, w), dtype=np.uint8)
        self.observation_space = gym.spaces.Box(0, 255, self._frames.shape, dtype=np.uint8)

    def _chw(self, obs: np.ndarray) -> np.ndarray:
        return obs[None] if obs.ndim == 2 else obs.transpose(2, 0, 1)

    def reset(self, **kwargs: Any) -> tuple[np.ndarray, dict]:
        obs, info = self.env.reset(**kwargs)
        self._frames[:] = np.tile(self._chw(obs), (self.k, 1, 1))
        return self._frames.copy(), info

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        c = self._channels
        self._frames[:-c] = self._frames[c:]
        self._frames[-c:] = self._chw(obs)
        return self._frames.copy(), reward, terminated, truncated, info
