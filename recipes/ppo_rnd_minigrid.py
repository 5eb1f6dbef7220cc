"""PPO with Random Network Distillation on MiniGrid DoorKey, composed from registered components by name.

Run it:  python recipes/ppo_rnd_minigrid.py [--frames 1000000] [--task MiniGrid-DoorKey-8x8-v0] [--seed 0]

DoorKey's only reward comes after picking up the key, opening the door and reaching the goal: a sparse task where
PPO alone rarely finds the goal and a novelty bonus leads it there. The intrinsic reward (RND, Burda et al. 2019:
the error of a predictor distilling a fixed random network, on normalised observations, divided by the running std
of its discounted return) is added to the task reward before advantages are computed, weighted by ``beta * (1 -
kappa) ** frames``. Logs ``charts/episodic_return`` (the task reward alone), ``charts/intrinsic_reward`` and
``losses/rnd_loss`` per frame, and prints the success rate of a final evaluation. The same run from the CLI is `rlte
train ppo_rnd_minigrid` (rlte_plugins/configs/ppo_rnd_minigrid.yaml).
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
    frames: int = 1_000_000  # environment frames to train for
    seed: int = 0  # seed of torch, numpy, Python and the environment
    device: str = "cpu"  # where the networks and the update live
    threads: int | None = None  # torch's CPU threads (None: torch's default)
    eval_episodes: int = 32  # episodes of the final deterministic evaluation
    logger: str = "csv"  # TorchRL logger: csv, tensorboard, wandb, mlflow or none
    output: str = "runs/ppo_rnd_minigrid"  # run directory (logs, checkpoint, learning curve)
    # environment
    task: str = "MiniGrid-DoorKey-8x8-v0"  # a MiniGrid task (the agent's 7x7 view, 147 integer codes)
    num_envs: int = 16  # parallel envs
    # PPO (CleanRL's ppo.py, with the rollouts RLeXplore's MiniGrid runs use)
    num_steps: int = 128  # steps per env per batch
    epochs: int = 4  # passes over each batch
    num_minibatches: int = 4  # minibatches per pass
    lr: float = 2.5e-4  # Adam learning rate, annealed to 0
    gamma: float = 0.99  # discount
    gae_lambda: float = 0.95  # GAE lambda
    entropy_coef: float = 0.01  # entropy bonus weight
    # RND (RLeXplore's MiniGrid weighting: a small bonus that decays, so the task reward takes over)
    intrinsic_coef: float = 1.0  # weight of the bonus added to the task reward
    beta: float = 0.05  # the bonus's weight at frame 0 (after normalisation)
    kappa: float = 2.5e-5  # decay of that weight per frame: beta * (1 - kappa) ** frames
    rnd_lr: float = 1e-4  # the predictor's learning rate
    update_proportion: float = 0.25  # fraction of each batch the predictor trains on


def parse_args(argv: list[str] | None = None) -> Args:
    return recipe_arguments(Args, __doc__.splitlines()[0], argv)


def main(args: Args) -> float:
    quiet_torchrl()
    if args.threads:
        torch.set_num_threads(args.threads)
    env = rlte_plugins.make("env", "minigrid", task=args.task, num_envs=args.num_envs, seed=args.seed,
                            device=args.device)  # fmt: skip
    encoder = rlte_plugins.make("encoder", "mlp", num_cells=[64, 64], activation="tanh")  # the 147 codes, flat
    reward = rlte_plugins.make("reward", "rnd", beta=args.beta, kappa=args.kappa, lr=args.rnd_lr,
                               update_proportion=args.update_proportion)  # fmt: skip

    agent = rlte_plugins.make(
        "agent",
        "ppo",
        env=env,
        device=args.device,
        seed=args.seed,
        num_steps=args.num_steps,
        epochs=args.epochs,
        num_minibatches=args.num_minibatches,
        lr=args.lr,
        gamma=args.gamma,
        gae_lambda=args.gae_lambda,
        entropy_coef=args.entropy_coef,
        intrinsic_coef=args.intrinsic_coef,
    ).set(encoder=encoder, reward=reward)

    output = Path(args.output)
    logger = make_logger(args.logger, output, "ppo_rnd_minigrid")
    agent.train(args.frames, logger=logger, checkpoint=output / "checkpoint.pt")

    returns = agent.evaluate(episodes=args.eval_episodes)
    agent.close()
    success = sum(r > 0 for r in returns) / len(returns)  # DoorKey pays only at the goal
    if logger is not None:
        logger.log_scalar("eval/episodic_return", statistics.fmean(returns), step=agent.frames)
        logger.log_scalar("eval/success_rate", success, step=agent.frames)
    curve = plot_learning_curve(agent.history, output / "learning_curve.png", f"PPO + RND on {args.task}",
                                statistics.fmean(returns))  # fmt: skip
    print(f"success rate over {len(returns)} evaluation episodes: {success:.2f} (mean return "
          f"{statistics.fmean(returns):.3f})")  # fmt: skip
    print(f"learning curve: {curve}   checkpoint: {output / 'checkpoint.pt'}")
    return success


if __name__ == "__main__":
    main(parse_args())
