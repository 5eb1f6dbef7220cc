"""Watching a trained agent: episodes of its acting module on one env made like its training env, written to a
video (``rlte play``).

Frames come from the env's ``render_frames(size)`` (the torch-native tasks draw their state at the size asked; the
numpy-backed families draw through their backend or show their image observation), enlarged or reduced to ``size``
on their long side; GIFs are written with Pillow, MP4s with ``imageio-ffmpeg``.

Examples:
    >>> import pathlib, tempfile
    >>> import rlte_plugins
    >>> from rlte_plugins.training.play import play
    >>> agent = rlte_plugins.make("agent", "ppo", env="torch_cartpole", num_envs=2)
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     result = play(agent, episodes=2, max_steps=5, video=pathlib.Path(folder) / "cartpole.gif", size=64)
    >>> [(e.length, e.ended) for e in result.episodes], result.frames, result.frame_size
    ([(5, False), (5, False)], 12, (64, 64))
"""

from __future__ import annotations

import dataclasses
import os
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tensordict import TensorDictBase
from torchrl.envs import EnvBase
from torchrl.envs.utils import ExplorationType, set_exploration_type, step_mdp

from rlte_plugins.envs.core import EPISODE_END_KEY, EPISODE_RETURN_KEY
from rlte_plugins.errors import ComponentArgumentError, MissingDependencyError, SpecMismatchError, positive_int

#: the video formats :func:`play` writes, by file extension: what writes them
VIDEO_FORMATS = {".gif": "Pillow", ".mp4": "imageio-ffmpeg"}

#: GIFs store frame delays in hundredths of a second, and viewers slow down delays under 20 ms
MAX_GIF_FPS = 50


@dataclasses.dataclass
class Episode:
    """One played episode: its return (the env's episode score where it keeps one), its length in agent steps,
    and whether it ended by itself (``False``: cut at ``max_steps``)."""

    episode_return: float
    length: int
    ended: bool


@dataclasses.dataclass
class PlayResult:
    """What :func:`play` did: the episodes, and the video written (``None`` without one) with its frame count,
    frame size ``(height, width)`` and rate."""

    episodes: list[Episode]
    video: Path | None
    frames: int
    frame_size: tuple[int, int] | None
    fps: float


def play(
    agent: Any,
    episodes: int = 1,
    *,
    deterministic: bool = True,
    max_steps: int = 1_000,
    video: str | os.PathLike[str] | None = None,
    fps: float = 25,
    size: int | None = 256,
    seed: int = 0,
    env: EnvBase | None = None,
) -> PlayResult:
    """Run ``episodes`` episodes of ``agent.actor`` one after another on one env and write every frame to ``video``.

    Each episode starts from a reset (its first frame) and adds a frame per agent step, the last one showing where
    it ended: ``sum(lengths) + episodes`` frames in all. An episode ends at the env's ``"episode_end"`` (under
    episodic life a lost life does not end the game; elsewhere it is ``"done"``), or is cut after ``max_steps``.

    Args:
        agent: a built or loaded agent (:func:`rlte_plugins.load_agent`).
        episodes: episodes to play.
        deterministic: the actor's mode action; ``False`` samples, from torch's generator seeded with ``seed``
            (inside a fork: the caller's generator does not move).
        max_steps: agent steps after which an episode is cut.
        video: a ``.gif`` or ``.mp4`` file, written atomically, its folder created (``None``: no frames are drawn).
            GIFs keep every frame in memory until they are written (about ``size * size`` bytes a frame).
        fps: frames per second of the video (at most :data:`MAX_GIF_FPS` for a GIF).
        size: frames are drawn at, or scaled to, this many pixels on their long side (small frames enlarged
            pixel by pixel); ``None``: as the env renders them.
        seed: seed of the env made like the training env (``agent.make_env_like(1, seed)``).
        env: the env to play on instead (one env, ``num_envs=1``, not wrapped: the agent's transforms are added).

    Raises :class:`~rlte_plugins.errors.SpecMismatchError` for an env that cannot render frames and
    :class:`~rlte_plugins.errors.MissingDependencyError` for an MP4 without ``imageio-ffmpeg``, both before any
    episode runs.
    """
    owner = "play"
    positive_int(owner, "episodes", episodes)
    positive_int(owner, "max_steps", max_steps)
    if size is not None:
        positive_int(owner, "size", size)
    writer = None if video is None else VideoWriter(video, fps)
    made = env is None
    if env is None:
        env = agent.make_env_like(1, seed)
    try:
        if env.batch_size != torch.Size([1]):
            raise ComponentArgumentError(f"{owner}: needs an env of one env (num_envs=1), got {env}")
        draw = None if writer is None else _frame_source(env, size)
        run_env = agent.wrap_env(env)
        actor = agent.actor
        was_training = actor.training
        actor.eval()
        cuda = env.device is not None and env.device.type == "cuda"
        try:
            with torch.random.fork_rng(devices=[env.device] if cuda else []), torch.no_grad():
                torch.default_generator.manual_seed(seed)
                if cuda:
                    with torch.cuda.device(env.device):
                        torch.cuda.manual_seed(seed)
                mode = ExplorationType.DETERMINISTIC if deterministic else ExplorationType.RANDOM
                with set_exploration_type(mode):
                    played = [_episode(run_env, actor, max_steps, writer, draw) for _ in range(episodes)]
        finally:
            actor.train(was_training)
        if writer is None:
            return PlayResult(played, None, 0, None, fps)
        path = writer.close()
        return PlayResult(played, path, writer.frames, writer.frame_size, fps)
    finally:
        if writer is not None:
            writer.abort()  # after close(), nothing is left to remove
        if made:
            env.close()


def _episode(env: EnvBase, actor: Any, max_steps: int, writer: VideoWriter | None, draw: Any) -> Episode:
    td: TensorDictBase = env.reset()
    keys = env.observation_spec.keys()
    scored = EPISODE_END_KEY in keys and EPISODE_RETURN_KEY in keys
    total, length, ended = 0.0, 0, False
    if writer is not None:
        writer.append(draw())
    while length < max_steps:
        td = env.step(actor(td))
        length += 1
        if writer is not None:
            writer.append(draw())  # before any reset: the state this step reached
        nxt = td.get("next")
        if scored:
            total = float(nxt.get(EPISODE_RETURN_KEY).reshape(()))  # the running score: the game's, unclipped
            ended = bool(nxt.get(EPISODE_END_KEY).reshape(()))
        else:
            total += float(nxt.get("reward").sum())
            ended = bool(nxt.get("done").reshape(()))
        if ended:
            break
        # a done step that is not the end (a lost life under episodic life): the env resets what it must
        td = env.maybe_reset(step_mdp(td))
    return Episode(total, length, ended)


def _frame_source(env: EnvBase, size: int | None) -> Any:
    """A function returning the env's current frame, ``uint8`` ``[H, W, 3]`` numpy, ``size`` on its long side."""
    render = getattr(env, "render_frames", None)
    if render is None:
        name = getattr(env, "family", None) or getattr(env, "name", None) or type(env).__name__
        raise SpecMismatchError(f"env {name!r} cannot render frames: {type(env).__name__} has no render_frames()")

    def draw() -> np.ndarray:
        return resize_frame(render(size)[0], size).cpu().numpy()

    return draw


def resize_frame(frame: torch.Tensor, size: int | None) -> torch.Tensor:
    """``frame`` (``uint8`` ``[H, W, 3]``) scaled to ``size`` pixels on its long side: enlarged pixel by pixel
    (nearest), reduced by averaging (area); as it is when it fits or ``size`` is ``None``.

    Examples:
        >>> import torch
        >>> frame = torch.arange(4, dtype=torch.uint8).reshape(2, 2, 1).expand(2, 2, 3)
        >>> resize_frame(frame, 4)[..., 0]
        tensor([[0, 0, 1, 1],
                [0, 0, 1, 1],
                [2, 2, 3, 3],
                [2, 2, 3, 3]], dtype=torch.uint8)
        >>> resize_frame(torch.zeros(30, 60, 3, dtype=torch.uint8), 20).shape
        torch.Size([10, 20, 3])
    """
    height, width = frame.shape[:2]
    if size is None or max(height, width) == size:
        return frame
    scale = size / max(height, width)
    shape = (max(1, round(height * scale)), max(1, round(width * scale)))
    image = frame.permute(2, 0, 1).unsqueeze(0).float()
    mode = "nearest-exact" if scale > 1 else "area"
    resized = torch.nn.functional.interpolate(image, size=shape, mode=mode)
    return resized[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8)


def check_video_path(path: str | os.PathLike[str], fps: float) -> str:
    """The format of ``path`` (``".gif"`` or ``".mp4"``), if it can be written here at ``fps``; else one clear
    error: an unknown extension, a GIF faster than :data:`MAX_GIF_FPS`, a folder, an MP4 without
    ``imageio-ffmpeg``."""
    suffix = Path(path).suffix.lower()
    if suffix not in VIDEO_FORMATS:
        raise ComponentArgumentError(
            f"video {str(path)!r}: unknown format {suffix or '(no extension)'!r}; write "
            f"{' or '.join(VIDEO_FORMATS)} ({', '.join(f'{s} through {w}' for s, w in VIDEO_FORMATS.items())})"
        )
    if not (isinstance(fps, (int, float)) and not isinstance(fps, bool) and fps > 0):
        raise ComponentArgumentError(f"video {str(path)!r}: fps must be a positive number, got {fps!r}")
    if suffix == ".gif" and fps > MAX_GIF_FPS:
        raise ComponentArgumentError(
            f"video {str(path)!r}: a GIF plays at most {MAX_GIF_FPS} frames/s (its delays are hundredths of a "
            f"second, and viewers slow down shorter ones), got fps={fps}; write an .mp4 for more"
        )
    if Path(path).is_dir():
        raise ComponentArgumentError(f"video {str(path)!r} is a folder; name a file in it")
    if suffix == ".mp4":
        _imageio_ffmpeg()
    return suffix


def _imageio_ffmpeg() -> Any:
    try:
        import imageio_ffmpeg
    except ImportError as exc:
        raise MissingDependencyError(
            "writing an MP4 video needs imageio-ffmpeg (it ships an ffmpeg binary): pip install imageio-ffmpeg; "
            "or write a .gif (through Pillow)"
        ) from exc
    return imageio_ffmpeg


class VideoWriter:
    """Frames appended one by one into a GIF (Pillow) or an MP4 (``imageio-ffmpeg``'s ffmpeg, H.264), written to
    a temporary file beside ``path`` and renamed over it by :meth:`close`: a reader never sees half a video.

    Every frame must have the first one's size. :meth:`abort` removes what was written (a no-op after
    :meth:`close`).
    """

    def __init__(self, path: str | os.PathLike[str], fps: float) -> None:
        self.format = check_video_path(path, fps)
        self.path, self.fps = Path(path), fps
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ComponentArgumentError(
                f"video {str(path)!r}: cannot create its folder: {exc.strerror or exc}"
            ) from exc
        self.frames = 0
        self.frame_size: tuple[int, int] | None = None
        self._images: list[Any] = []  # GIF: palette images until close()
        self._ffmpeg: Any = None  # MP4: the generator feeding ffmpeg
        self._tmp: Path | None = None

    def append(self, frame: np.ndarray) -> None:
        """Add one ``uint8`` RGB frame, ``[H, W, 3]``."""
        height, width = frame.shape[:2]
        if self.frame_size is None:
            self.frame_size = (height, width)
            self._start()
        elif (height, width) != self.frame_size:
            raise SpecMismatchError(f"video {str(self.path)!r}: a {height}x{width} frame after {self.frame_size}")
        frame = np.ascontiguousarray(frame, dtype=np.uint8)
        if self.format == ".gif":
            from PIL import Image

            # each frame gets its own palette, as Pillow would give it; a third of the memory of RGB
            self._images.append(Image.fromarray(frame).convert("P", palette=Image.Palette.ADAPTIVE))
        else:
            self._ffmpeg.send(frame.tobytes())
        self.frames += 1

    def _start(self) -> None:
        # a fresh name, which Pillow or ffmpeg creates with the usual permissions (mkstemp gives the owner's only); the
        # extension last: ffmpeg picks the container from it
        self._tmp = self.path.parent / f".{self.path.name}.{uuid.uuid4().hex[:12]}.tmp{self.format}"
        if self.format == ".mp4":
            height, width = self.frame_size  # type: ignore[misc]
            # macro_block_size=2: H.264 needs even sizes; ffmpeg scales an odd one up a pixel
            self._ffmpeg = _imageio_ffmpeg().write_frames(str(self._tmp), (width, height), fps=self.fps,
                                                          macro_block_size=2)  # fmt: skip
            self._ffmpeg.send(None)  # starts ffmpeg

    def close(self) -> Path:
        """Finish the video and move it to ``path``; returns ``path``."""
        if self._tmp is None:
            raise RuntimeError(f"video {str(self.path)!r}: no frame was appended")
        if self.format == ".gif":
            first, *rest = self._images
            first.save(self._tmp, format="GIF", save_all=True, append_images=rest, duration=round(1000 / self.fps),
                       loop=0)  # fmt: skip
            self._images = []
        else:
            self._ffmpeg.close()
            self._ffmpeg = None
        os.replace(self._tmp, self.path)
        self._tmp = None
        return self.path

    def abort(self) -> None:
        """Stop writing and remove the temporary file (nothing to do after :meth:`close`)."""
        if self._ffmpeg is not None:
            self._ffmpeg.close()
            self._ffmpeg = None
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)
            self._tmp = None
        self._images = []
