"""PPO on CartPole-v1, composed from registered components by name.

Run it:  python recipes/ppo_cartpole.py [--total-frames 100000] [--seed 0] [--output runs/ppo_cartpole]

The same run from the CLI is `rlte train ppo_cartpole` (rlte_plugins/configs/ppo_cartpole.yaml holds the same
hyperparameters; a test keeps the two equal).
"""

from __future__ import annotations

import dataclasses
import statistics
from pathlib import Path

import rlte_plugins
from rlte_plugins.training.metrics import make_logger
from rlte_plugins.training.plot import plot_learning_curve
from rlte_plugins.training.runner import quiet_torchrl, recipe_arguments


@dataclasses.dataclass
class Args:
    # run
    total_frames: int = 100_000  # environment frames to train for
    seed: int = 0  # seed of torch, numpy, Python and the environments
    device: str = "cpu"  # where the networks, the rollout and the update live
    eval_episodes: int = 20  # episodes of the final deterministic evaluation
    logger: str = "csv"  # TorchRL logger: csv, tensorboard, wandb, mlflow or none
    output: str = "runs/ppo_cartpole"  # run directory (logs, checkpoint, learning curve)
    # environment
    env_id: str = "CartPole-v1"  # gymnasium id
    num_envs: int = 8  # parallel environments
    # networks
    num_cells: tuple[int, ...] = (64, 64)  # MLP encoder widths (actor and critic each own one)
    activation: str = "tanh"  # MLP activation
    # PPO (the tuned CartPole configuration of rl-baselines3-zoo)
    num_steps: int = 32  # steps per environment per batch: 8 x 32 = 256 frames per update
    epochs: int = 20  # passes over each batch
    num_minibatches: int = 1  # minibatches per pass
    lr: float = 1e-3  # Adam learning rate, annealed linearly to 0
    gamma: float = 0.98  # discount
    gae_lambda: float = 0.8  # GAE lambda
    clip_epsilon: float = 0.2  # PPO clip range, annealed linearly to 0
    entropy_coef: float = 0.0  # entropy bonus
    value_coef: float = 0.5  # value-loss weight
    max_grad_norm: float = 0.5  # gradient-norm clip
    clip_value: float | None = None  # value clipping: off in the zoo's configuration


def parse_args(argv: list[str] | None = None) -> Args:
    return recipe_arguments(Args, __doc__.splitlines()[0], argv)


def main(args: Args) -> float:
    quiet_torchrl()
    env = rlte_plugins.make(
        "env", "gymnasium", env_id=args.env_id, num_envs=args.num_envs, seed=args.seed, device=args.device
    )
    encoder = rlte_plugins.make("encoder", "mlp", num_cells=list(args.num_cells), activation=args.activation)
    distribution = rlte_plugins.make("distribution", "categorical")
    policy = rlte_plugins.make("policy", "actor_critic", shared_encoder=False)

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
        anneal_lr=True,
        gamma=args.gamma,
        gae_lambda=args.gae_lambda,
        clip_epsilon=args.clip_epsilon,
        anneal_clip=True,
        entropy_coef=args.entropy_coef,
        value_coef=args.value_coef,
        clip_value=args.clip_value,
        max_grad_norm=args.max_grad_norm,
    ).set(encoder=encoder, distribution=distribution, policy=policy)

    output = Path(args.output)
    agent.train(args.total_frames, logger=make_logger(args.logger, output, "ppo_cartpole"),
                checkpoint=output / "checkpoint.pt")  # fmt: skip

    returns = agent.evaluate(episodes=args.eval_episodes)
    mean_return = statistics.fmean(returns)
    curve = plot_learning_curve(agent.history, output / "learning_curve.png", f"PPO on {args.env_id}", mean_return)
    print(f"final mean return over {len(returns)} evaluation episodes: {mean_return:.2f}")
    print(f"learning curve: {curve}   checkpoint: {output / 'checkpoint.pt'}")
    return mean_return


if __name__ == "__main__":
    main(parse_args())
