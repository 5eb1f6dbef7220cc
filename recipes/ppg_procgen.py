"""Phasic Policy Gradient on Procgen, composed from registered components by name.

Run it:  python recipes/ppg_procgen.py [--frames 25000000] [--game bigfish] [--device cuda] [--seed 0]

PPG (Cobbe et al., 2021) trains PPO's policy and value networks apart: every ``n_pi`` PPO iterations, an auxiliary
phase distils the value targets of those iterations into an auxiliary value head on the policy network's features,
while a behaviour-cloning KL keeps the policy where it was. The networks are the IMPALA CNN (16-32-32 channels,
256 features) the paper uses, one for the policy and one for the value function; every hyperparameter is the
paper's (its Appendix A and openai/phasic-policy-gradient's train.py).

The protocol is Procgen's generalisation one (Cobbe et al., 2020): easy mode, 200 training levels, 25M frames;
at the end the policy is scored on the training levels and on the full distribution of levels (num_levels 0:
almost all unseen), with sampled actions as Procgen's scores are. The PPG paper itself trains on the full
distribution in hard mode for 100M frames: ``--num-levels 0 --distribution-mode hard --frames 100000000``.

The auxiliary phase keeps n_pi x num_envs x num_steps observations (uint8): 32 x 64 x 256 frames of 3x64x64 are
6.0 GiB on the training device, refused at build where that much is not available. Each minute of a GPU run is
hours on a CPU. Logs ``charts/episodic_return`` per frame, the policy phase's ``losses/...`` every iteration and
``losses/aux_value_loss``, ``losses/aux_real_value_loss``, ``losses/bc_kl`` after every auxiliary phase. The same
run from the CLI is `rlte train ppg_procgen` (rlte_plugins/configs/ppg_procgen.yaml).
"""

from __future__ import annotations

import dataclasses
import statistics
from pathlib import Path

import torch
from torchrl.envs import EnvBase

import rlte_plugins
from rlte_plugins.training.metrics import make_logger
from rlte_plugins.training.plot import plot_learning_curve
from rlte_plugins.training.runner import quiet_torchrl, recipe_arguments


@dataclasses.dataclass
class Args:
    # run
    frames: int = 25_000_000  # environment frames to train for (Procgen's easy generalisation protocol)
    seed: int = 0  # seed of torch, numpy, Python and the environment
    device: str = "cpu"  # where the networks, the update and the stored observations live (cuda at this scale)
    threads: int | None = None  # torch's CPU threads (None: torch's default)
    eval_episodes: int = 64  # episodes of each final evaluation (training levels, then all levels)
    logger: str = "csv"  # TorchRL logger: csv, tensorboard, wandb, mlflow or none
    output: str = "runs/ppg_procgen"  # run directory (logs, checkpoint, learning curve)
    # environment
    game: str = "bigfish"  # one of Procgen's 16 games
    num_envs: int = 64  # parallel envs
    num_levels: int = 200  # training levels (0: the full distribution)
    distribution_mode: str = "easy"  # easy or hard
    # networks (the IMPALA CNN; heads initialised with rows of norm 0.1, as the reference's)
    channels: tuple[int, ...] = (16, 32, 32)  # channels of the residual stacks
    features: int = 256  # width of the encoder's output
    head_init_gain: float = 0.1  # orthogonal-init gain of the policy, value and auxiliary value heads
    # policy phase (PPO)
    num_steps: int = 256  # steps per env per batch: 64 x 256 = 16,384 frames an iteration
    epochs: int = 1  # passes over each batch (E_pi = E_V)
    num_minibatches: int = 8  # minibatches per pass
    lr: float = 5e-4  # Adam learning rate, constant
    gamma: float = 0.999  # discount
    gae_lambda: float = 0.95  # GAE lambda
    clip_epsilon: float = 0.2  # PPO clip range
    entropy_coef: float = 0.01  # entropy bonus weight
    value_coef: float = 0.5  # weight of the squared value error
    # auxiliary phase
    n_pi: int = 32  # policy-phase iterations between auxiliary phases (N_pi)
    aux_epochs: int = 6  # passes over the stored iterations (E_aux)
    aux_num_minibatches: int = 16  # minibatches per pass and stored iteration: 512 of 1,024 frames
    beta_clone: float = 1.0  # weight of the behaviour-cloning KL
    aux_lr: float = 5e-4  # Adam learning rate of the auxiliary phase's own optimiser


def parse_args(argv: list[str] | None = None) -> Args:
    return recipe_arguments(Args, __doc__.splitlines()[0], argv)


def procgen(args: Args, num_envs: int, num_levels: int, seed: int) -> EnvBase:
    return rlte_plugins.make("env", "procgen", game=args.game, num_envs=num_envs, seed=seed, num_levels=num_levels,
                             distribution_mode=args.distribution_mode, device=args.device)  # fmt: skip


def main(args: Args) -> tuple[float, float]:
    quiet_torchrl()
    if args.threads:
        torch.set_num_threads(args.threads)
    env = procgen(args, args.num_envs, args.num_levels, args.seed)
    encoder = rlte_plugins.make("encoder", "espeholt_resnet", channels=list(args.channels), features=args.features)
    distribution = rlte_plugins.make("distribution", "categorical", init_gain=args.head_init_gain)
    policy = rlte_plugins.make("policy", "phasic_actor_critic", value_init_gain=args.head_init_gain,
                               aux_value_init_gain=args.head_init_gain)  # fmt: skip

    agent = rlte_plugins.make(
        "agent",
        "ppg",
        env=env,
        device=args.device,
        seed=args.seed,
        num_steps=args.num_steps,
        epochs=args.epochs,
        num_minibatches=args.num_minibatches,
        lr=args.lr,
        gamma=args.gamma,
        gae_lambda=args.gae_lambda,
        clip_epsilon=args.clip_epsilon,
        entropy_coef=args.entropy_coef,
        value_coef=args.value_coef,
        n_pi=args.n_pi,
        aux_epochs=args.aux_epochs,
        aux_num_minibatches=args.aux_num_minibatches,
        beta_clone=args.beta_clone,
        aux_lr=args.aux_lr,
    ).set(encoder=encoder, distribution=distribution, policy=policy)
    agent.build()
    print(f"auxiliary buffer: {agent.aux_buffer_bytes / 2**20:,.1f} MiB on {agent.device}")

    output = Path(args.output)
    logger = make_logger(args.logger, output, "ppg_procgen")
    agent.train(args.frames, logger=logger, checkpoint=output / "checkpoint.pt")

    # Procgen scores are the sampling policy's: an argmax policy can stall where the sampled one moves on
    scores = {}
    for split, levels in (("train", args.num_levels), ("test", 0)):
        eval_env = procgen(args, min(args.eval_episodes, args.num_envs), levels, args.seed + 1)
        scores[split] = statistics.fmean(agent.evaluate(episodes=args.eval_episodes, deterministic=False,
                                                        env=eval_env))  # fmt: skip
        eval_env.close()
        if logger is not None:
            logger.log_scalar(f"eval/{split}_episodic_return", scores[split], step=agent.frames)
    agent.close()
    curve = plot_learning_curve(agent.history, output / "learning_curve.png", f"PPG on {args.game}",
                                scores["train"])  # fmt: skip
    print(f"mean return over {args.eval_episodes} episodes: train levels {scores['train']:.2f}, all levels "
          f"{scores['test']:.2f}")  # fmt: skip
    print(f"learning curve: {curve}   checkpoint: {output / 'checkpoint.pt'}")
    return scores["train"], scores["test"]


if __name__ == "__main__":
    main(parse_args())
