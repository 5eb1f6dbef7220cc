"""SAC on the torch-native Pendulum swing-up, composed from registered components by name.

Run it:  python recipes/sac_pendulum.py [--frames 10000] [--seed 0] [--device cpu]

Soft actor-critic as CleanRL's ``sac_continuous_action.py`` runs it (256x256 MLPs, Adam 3e-4, a learned
temperature, one update per frame), with 1,000 random frames first so that 10k frames suffice on Pendulum. Logs
``charts/episodic_return`` per frame and a deterministic ``eval/episodic_return`` at the end. The same run from
the CLI is `rlte train sac_pendulum` (rlte_plugins/configs/sac_pendulum.yaml).
"""

from __future__ import annotations

import dataclasses
import statistics
from pathlib import Path

import torch

import rlte_plugins
from rlte_plugins.training.metrics import make_logger
from rlte_plugins.training.plot import plot_learning_curve
from rlte_plugins.training.runner import quiet_torchrl, recipe_arguments


@dataclasses.dataclass
class Args:
    # run
    frames: int = 10_000  # environment frames to train for
    seed: int = 0  # seed of torch, numpy, Python and the environment
    device: str = "cpu"  # where the networks, the replay and the update live
    threads: int | None = None  # torch's CPU threads (None: torch's default)
    eval_episodes: int = 10  # episodes of the final deterministic evaluation
    logger: str = "csv"  # TorchRL logger: csv, tensorboard, wandb, mlflow or none
    output: str = "runs/sac_pendulum"  # run directory (logs, checkpoint, learning curve)
    # environment
    env: str = "torch_pendulum"  # a registered continuous-action env
    # networks
    hidden: int = 256  # width of the two hidden layers of the actor and of each Q network
    # SAC
    learning_starts: int = 1_000  # frames before the first update, acted with uniformly random actions
    utd_ratio: float = 1.0  # gradient updates per frame
    lr: float = 3e-4  # Adam learning rate of the actor, the critics and the temperature
    gamma: float = 0.99  # discount
    tau: float = 0.005  # target critics' averaging weight
    alpha_init: float = 1.0  # initial temperature, learned towards -dim(action) entropy
    capacity: int = 1_000_000  # replay transitions
    batch_size: int = 256  # transitions per update


def parse_args(argv: list[str] | None = None) -> Args:
    return recipe_arguments(Args, __doc__.splitlines()[0], argv)


def main(args: Args) -> float:
    quiet_torchrl()
    if args.threads:
        torch.set_num_threads(args.threads)
    env = rlte_plugins.make("env", args.env, seed=args.seed, device=args.device)
    encoder = rlte_plugins.make("encoder", "identity")  # the state vector as is
    policy = rlte_plugins.make("policy", "stochastic_double_critic", hidden=[args.hidden, args.hidden],
                               shared_encoder=False)  # fmt: skip
    distribution = rlte_plugins.make("distribution", "squashed_normal")  # tanh-squashed Gaussian
    storage = rlte_plugins.make("storage", "replay", capacity=args.capacity, batch_size=args.batch_size)

    agent = rlte_plugins.make(
        "agent",
        "sac",
        env=env,
        device=args.device,
        seed=args.seed,
        learning_starts=args.learning_starts,
        random_frames=args.learning_starts,
        utd_ratio=args.utd_ratio,
        lr=args.lr,
        gamma=args.gamma,
        tau=args.tau,
        alpha_init=args.alpha_init,
    ).set(encoder=encoder, policy=policy, distribution=distribution, storage=storage)

    output = Path(args.output)
    logger = make_logger(args.logger, output, "sac_pendulum")
    agent.train(args.frames, logger=logger, checkpoint=output / "checkpoint.pt")

    returns = agent.evaluate(episodes=args.eval_episodes)
    mean_return = statistics.fmean(returns)
    agent.close()
    if logger is not None:
        logger.log_scalar("eval/episodic_return", mean_return, step=agent.frames)
    curve = plot_learning_curve(agent.history, output / "learning_curve.png", f"SAC on {args.env}", mean_return)
    print(f"final mean return over {len(returns)} evaluation episodes: {mean_return:.2f}")
    print(f"learning curve: {curve}   checkpoint: {output / 'checkpoint.pt'}")
    return mean_return


if __name__ == "__main__":
    main(parse_args())
