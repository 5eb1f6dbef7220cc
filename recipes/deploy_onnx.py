"""Run an exported policy with numpy and onnxruntime only: no torch, no TorchRL, no rlte-plugins.

    rlte train ppo_cartpole --output runs/ppo_cartpole       # or any run directory / checkpoint
    rlte export runs/ppo_cartpole --output policy.onnx
    python recipes/deploy_onnx.py policy.onnx --episodes 3   # a Gymnasium env: the one named in the model
    python recipes/deploy_onnx.py policy.onnx --random 256   # no env: latency on random observations

Everything deployment must reproduce is in the model's metadata (``rlte``: a JSON object): the inputs' names, shapes
and dtypes, the recurrent state fed back from step to step (``is_init`` marks an episode's first step), the frame
stack of pixel envs and the action bounds. :class:`OnnxPolicy` reads it; :class:`FrameStack` stacks frames the way
the training envs did (newest last on the channel axis, a reset fills the stack with the first frame).
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np
import onnxruntime as ort

_DTYPES = {"float32": np.float32, "float16": np.float16, "uint8": np.uint8, "int64": np.int64, "int32": np.int32,
           "bool": np.bool_}  # fmt: skip


class OnnxPolicy:
    """The exported policy with its recurrent state: ``policy.reset(n)``, then ``policy(observation)`` per step."""

    def __init__(self, path: str, threads: int = 1) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self.meta: dict[str, Any] = json.loads(self.session.get_modelmeta().custom_metadata_map["rlte"])
        self.inputs = {i["name"]: i for i in self.meta["inputs"]}
        self.outputs = [o["name"] for o in self.meta["outputs"]]
        self.recurrent: dict[str, str] = self.meta["recurrent"]  # output -> the input it feeds at the next step
        self.observations = [n for n in self.inputs if n not in self.recurrent.values() and n != "is_init"]
        self.state: dict[str, np.ndarray] = {}
        self.first = np.ones((0,), dtype=bool)

    def reset(self, n: int) -> None:
        """Start ``n`` new episodes: zero state, ``is_init`` set at the next step."""
        self.state = {name: np.zeros((n, *self.inputs[name]["shape"]), _DTYPES[self.inputs[name]["dtype"]])
                      for name in self.recurrent.values()}  # fmt: skip
        self.first = np.ones(n, dtype=bool)

    def __call__(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        n = len(next(iter(observation.values())))
        if len(self.first) != n:
            self.reset(n)
        feed = {name: np.asarray(observation[name], _DTYPES[self.inputs[name]["dtype"]]).reshape(
                    n, *self.inputs[name]["shape"]) for name in self.observations}  # fmt: skip
        feed.update(self.state)
        if "is_init" in self.inputs:
            feed["is_init"] = self.first.reshape(n, *self.inputs["is_init"]["shape"])
        results = dict(zip(self.outputs, self.session.run(self.outputs, feed), strict=True))
        self.state = {state: results[out] for out, state in self.recurrent.items()}
        self.first = np.zeros(n, dtype=bool)
        action = results["action"]
        space = self.meta["action"]
        if "low" in space:  # the training env clipped actions into its bounds
            low = np.asarray(space["low"], np.float32).reshape(space["shape"])
            action = np.clip(action, low, np.asarray(space["high"], np.float32).reshape(space["shape"]))
        return action


class FrameStack:
    """The newest ``k`` frames (``[C, H, W]`` each) on the channel axis, oldest first; a reset repeats the first."""

    def __init__(self, k: int) -> None:
        self.k, self.frames = k, None

    def reset(self, frame: np.ndarray) -> np.ndarray:
        self.frames = np.concatenate([frame] * self.k, axis=0)
        return self.frames

    def step(self, frame: np.ndarray) -> np.ndarray:
        channels = frame.shape[0]
        self.frames = np.concatenate([self.frames[channels:], frame], axis=0)
        return self.frames


def play(policy: OnnxPolicy, env_id: str, episodes: int, seed: int) -> list[float]:
    """Returns of ``episodes`` episodes of a Gymnasium env (one at a time, as a deployed controller runs)."""
    import gymnasium as gym

    env = gym.make(env_id)
    name = policy.observations[0]
    spec = policy.inputs[name]
    image = spec["dtype"] == "uint8" and len(spec["shape"]) == 3  # channels first; Gymnasium gives [H, W, C]
    stack = FrameStack(policy.meta.get("frame_stack") or 1) if image else None
    returns = []
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)
        policy.reset(1)
        obs = stack.reset(obs.transpose(2, 0, 1)) if image else obs
        total, done = 0.0, False
        while not done:
            action = policy({name: obs[None]})[0]
            obs, reward, terminated, truncated, _ = env.step(action.item() if action.ndim == 0 else action)
            obs = stack.step(obs.transpose(2, 0, 1)) if image else obs
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    env.close()
    return returns


def latency(policy: OnnxPolicy, batch: int, repeats: int = 50) -> float:
    """Median seconds per call on ``batch`` random observations of the declared shapes."""
    rng = np.random.default_rng(0)
    observation = {}
    for name in policy.observations:
        spec = policy.inputs[name]
        shape = (batch, *spec["shape"])
        observation[name] = (rng.integers(0, 256, shape).astype(np.uint8) if spec["dtype"] == "uint8"
                             else rng.standard_normal(shape).astype(_DTYPES[spec["dtype"]]))  # fmt: skip
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        policy(observation)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="a policy exported by `rlte export` (.onnx)")
    parser.add_argument("--env-id", help="Gymnasium env to run (default: the one the model was trained on)")
    parser.add_argument("--episodes", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--random", type=int, metavar="BATCH", help="no env: time the policy on random observations")
    args = parser.parse_args(argv)
    policy = OnnxPolicy(args.model)
    meta = policy.meta
    inputs = ", ".join(f"{name} {spec['dtype']}{spec['shape']}" for name, spec in policy.inputs.items())
    print(f"{args.model}: agent {meta['preset'] or meta['agent']!r}, {meta['frames']:,} frames, inputs {inputs}")
    if args.random:
        seconds = latency(policy, args.random)
        print(f"batch {args.random}: {seconds * 1e3:.3f} ms per call, {args.random / seconds:,.0f} actions/s")
        return
    env_id = args.env_id or (meta.get("env") or {}).get("env_id")
    if env_id is None:
        parser.error(f"the model was trained on {meta.get('env')}, not a Gymnasium id: pass --env-id or --random")
    returns = play(policy, env_id, args.episodes, args.seed)
    print(f"{env_id}: returns {', '.join(f'{r:.1f}' for r in returns)} (mean {np.mean(returns):.1f})")


if __name__ == "__main__":
    main()
