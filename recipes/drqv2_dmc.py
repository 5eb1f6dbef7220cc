"""DrQ-v2 from pixels on a DeepMind Control task, composed from registered components by name.

Run it:  python recipes/drqv2_dmc.py [--task cartpole_swingup] [--frames 100000] [--seed 0] [--device cpu]

The hyperparameters are the authors' (facebookresearch/drqv2); those that differ per task (the noise schedule,
the n-step return, the batch size) default to ``drqv2_settings(task)``. Frames are the authors' unit, agent steps
times the action repeat; the logs (``charts/episodic_return``, ``eval/episodic_return``) count agent steps.
``--env torch_pendulum`` trains on a torch-native pixel task instead (no MuJoCo rendering; ``--task`` then only
picks the settings). The same run from the CLI is `rlte train drqv2_dmc` (rlte_plugins/configs/drqv2_dmc.yaml).
"""

from __future__ import annotations

import dataclasses
import statistics
from pathlib import Path

import torch

import rlte_plugins
from rlte_plugins.agents.drq import drqv2_settings
from rlte_plugins.training.metrics import make_logger
from rlte_plugins.training.plot import plot_learning_curve
from rlte_plugins.training.runner import quiet_torchrl, recipe_arguments


@dataclasses.dataclass
class Args:
    # run
    task: str = "cartpole_swingup"  # DeepMind Control task; also picks the authors' per-task settings
    env: str = "dmc"  # dmc, or a torch-native pixel env (torch_pendulum) that needs no MuJoCo rendering
    frames: int = 100_000  # frames to train for (agent steps x action_repeat)
    seed: int = 0  # seed of torch, numpy, Python and the environment
    device: str = "cpu"  # where the networks, the replay and the update live
    threads: int | None = None  # torch's CPU threads (None: torch's default)
    eval_every: int = 10_000  # frames between deterministic evaluations (the authors')
    eval_episodes: int = 10  # episodes per evaluation (the authors')
    logger: str = "csv"  # TorchRL logger: csv, tensorboard, wandb, mlflow or none
    output: str = "runs/drqv2_dmc"  # run directory (logs, learning curve)
    # environment (the authors')
    action_repeat: int = 2  # each agent step repeats its action this many times
    frame_stack: int = 3  # frames stacked on the channel axis
    image_size: int = 84  # rendered height and width
    # networks (the authors')
    feature_dim: int = 50  # width of the actor's and the critic's trunk after the shared convolutions
    hidden_dim: int = 1024  # width of the two hidden layers of the actor and each Q head
    # DrQ-v2 (the authors')
    seed_frames: int = 4000  # frames of uniformly random actions before the first update
    update_every: int = 2  # agent steps per gradient update
    lr: float = 1e-4  # Adam learning rate of the encoder, the critic and the actor
    gamma: float = 0.99  # discount
    tau: float = 0.01  # target critic averaging weight
    capacity: int = 1_000_000  # replay transitions, capped at the run's agent steps (1M 84x84x9 frames: 127 GB)
    batch_size: int | None = None  # None: the task's (256; 512 on walker_walk)
    nstep: int | None = None  # n-step return; None: the task's (3; 1 on walker_walk)
    std_schedule: str | None = None  # exploration noise std; None: the task's (linear(1.0, 0.1, 100000 or 500000))
    std_clip: float = 0.3  # clip of the exploration and target policy noise
    pad: int = 4  # random shift: pad by this many pixels, then crop back at a random offset


def parse_args(argv: list[str] | None = None) -> Args:
    return recipe_arguments(Args, __doc__.splitlines()[0], argv)


def main(args: Args) -> float:
    quiet_torchrl()
    if args.threads:
        torch.set_num_threads(args.threads)
    task = drqv2_settings(args.task)
    steps = args.frames // args.action_repeat  # what the agent, its schedules and the logs count
    pixels = dict(from_pixels=True, action_repeat=args.action_repeat, frame_stack=args.frame_stack,
                  image_size=args.image_size, seed=args.seed, device=args.device)  # fmt: skip
    if args.env == "dmc":
        env = rlte_plugins.make("env", "dmc", task=args.task, **pixels)
    else:
        env = rlte_plugins.make("env", args.env, **pixels)
    encoder = rlte_plugins.make("encoder", "tassa_cnn", features=None)  # the trunks are the policy's
    policy = rlte_plugins.make("policy", "pixel_actor_critic", feature_dim=args.feature_dim,
                               hidden=[args.hidden_dim, args.hidden_dim])  # fmt: skip
    noise = rlte_plugins.make("distribution", "truncated_normal_noise",
                              std=args.std_schedule or task["distribution"]["std"], clip=args.std_clip)  # fmt: skip
    storage = rlte_plugins.make("storage", "nstep_replay", n=args.nstep or task["storage"]["n"], gamma=args.gamma,
                                capacity=max(min(args.capacity, steps), 1),
                                batch_size=args.batch_size or task["storage"]["batch_size"])  # fmt: skip
    augmentation = rlte_plugins.make("augmentation", "random_shift", pad=args.pad)

    seed_steps = args.seed_frames // args.action_repeat
    agent = rlte_plugins.make(
        "agent",
        "drqv2",
        env=env,
        device=args.device,
        seed=args.seed,
        learning_starts=seed_steps,
        random_frames=seed_steps,
        utd_ratio=1 / args.update_every,
        lr=args.lr,
        gamma=args.gamma,
        tau=args.tau,
    ).set(encoder=encoder, policy=policy, distribution=noise, storage=storage, augmentation=augmentation)

    # no checkpoint: an agent's checkpoint carries its replay, gigabytes of frames
    output = Path(args.output)
    agent.train(steps, eval_every=max(args.eval_every // args.action_repeat, 1), eval_episodes=args.eval_episodes,
                logger=make_logger(args.logger, output, "drqv2_dmc"))  # fmt: skip
    evaluations = [h["eval/episodic_return"] for h in agent.history if "eval/episodic_return" in h]
    final = evaluations[-1] if evaluations else statistics.fmean(agent.evaluate(args.eval_episodes))
    agent.close()
    title = f"DrQ-v2 on {args.env} {args.task if args.env == 'dmc' else ''}".strip()
    curve = plot_learning_curve(agent.history, output / "learning_curve.png", title, final)
    print(f"mean return of the last evaluation ({args.eval_episodes} episodes, {agent.frames * args.action_repeat} "
          f"frames): {final:.2f}")  # fmt: skip
    print(f"learning curve: {curve}")
    return final


if __name__ == "__main__":
    main(parse_args())
