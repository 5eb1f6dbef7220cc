"""IMPALA (Espeholt et al., 2018): actor-critic learning from unrolls of a behaviour policy that lags the learner,
corrected by V-trace; asynchronous actors through the ``async`` collection strategy (worker processes) or ``ray``
(Ray workers, on one machine or a cluster).

V-trace (the paper's eq. 1) is TorchRL's ``vtrace_advantage_estimate``, recomputed with the learner's current
parameters on every minibatch of whole unrolls (:class:`VTraceLoss`). Where the acting weights come from is the
collection's business: the learner's own (``direct``/``torchrl``: no lag), the learner's from ``policy_lag`` updates
ago (synchronous and deterministic, to study the correction), or workers updated after each learner step
(``collection="async"``: processes on this machine; ``collection="ray"``: Ray actors). Each frame carries the
learner's update count when its acting weights were copied (``policy_version``), from which the lag is measured and
logged (``charts/policy_lag``).
"""

from __future__ import annotations

import collections
import copy
import dataclasses
from typing import Any, ClassVar

import torch
from tensordict import TensorDict, TensorDictBase
from tensordict.nn import TensorDictSequential
from tensordict.utils import NestedKey
from torchrl.modules.distributions.utils import has_analytic_entropy, rsample_and_log_prob
from torchrl.objectives import LossModule
from torchrl.objectives.value.functional import vtrace_advantage_estimate

from rlte_plugins.agents.base import collection_option, num_workers_option, option
from rlte_plugins.agents.on_policy import OnPolicyAgent, OnPolicyConfig, next_state_values
from rlte_plugins.collection import LAGGED_STRATEGIES, STRATEGIES
from rlte_plugins.collection.asynchronous import VERSION_END_KEY, VERSION_KEY
from rlte_plugins.errors import ComponentArgumentError

_MAYBE_NUMBER = (int, float, type(None))


class VTraceLoss(LossModule):
    """IMPALA's loss over ``[rows, T]`` unrolls, with V-trace targets computed from the current parameters.

    With ``rho_s = min(rho_bar, pi(a_s|x_s) / mu(a_s|x_s))`` (``mu``: the behaviour policy, whose log-probability
    was stored at collection), the V-trace target ``v_s`` (eq. 1, traces cut by ``c_bar`` and at episode ends; a
    truncated episode bootstraps from the value of its last observation) trains the baseline with
    ``0.5 * (v_s - V(x_s))^2`` weighted ``critic_coeff``, and the policy follows ``-rho_s log pi(a_s|x_s) (r_s +
    gamma v_{s+1} - V(x_s))`` with an entropy bonus weighted ``entropy_coeff``. As in the authors' learner each term
    is summed over the steps of a minibatch: written as a mean times ``loss_scale`` (the steps per minibatch), so
    that a minibatch cut into chunks gets the same gradient. The logged ``policy_loss``, ``value_loss`` (unweighted)
    and ``entropy`` are means per step; ``importance_weight`` is the mean unclipped ratio ``pi / mu`` and
    ``rho_clip_fraction`` the share of steps where it exceeds ``rho_bar``.

    Examples:
        >>> import torch, rlte_plugins
        >>> agent = rlte_plugins.make("agent", "impala", env="torch_cartpole", num_envs=2, num_steps=5).build()
        >>> out = agent.loss_module(agent._advantages(agent.collect()))
        >>> sorted(k for k in out.keys() if k.startswith("loss"))
        ['loss_critic', 'loss_entropy', 'loss_objective']
        >>> round(float(out["importance_weight"]), 4)  # collected by the learner's own weights
        1.0
    """

    @dataclasses.dataclass
    class _AcceptedKeys:
        """Keys the loss reads (``set_keys`` renames them)."""

        advantage: NestedKey = "advantage"
        value_target: NestedKey = "value_target"
        value: NestedKey = "state_value"
        action: NestedKey = "action"
        sample_log_prob: NestedKey = "action_log_prob"
        reward: NestedKey = "reward"
        done: NestedKey = "done"
        terminated: NestedKey = "terminated"

    default_keys = _AcceptedKeys
    _schedulable_buffers = frozenset({"entropy_coeff"})

    def __init__(
        self,
        actor: Any,
        critic: Any,
        *,
        gamma: float = 0.99,
        rho_bar: float = 1.0,
        c_bar: float = 1.0,
        entropy_coeff: float = 0.01,
        critic_coeff: float = 0.5,
        loss_scale: float = 1.0,
        normalize_advantage: bool = False,
    ) -> None:
        super().__init__()
        self.actor_network, self.critic_network = actor, critic
        self.gamma, self.loss_scale, self.normalize_advantage = gamma, loss_scale, normalize_advantage
        self.register_buffer("rho_bar", torch.tensor(float(rho_bar)))
        self.register_buffer("c_bar", torch.tensor(float(c_bar)))
        self.register_buffer("entropy_coeff", torch.tensor(float(entropy_coeff)))
        self.register_buffer("critic_coeff", torch.tensor(float(critic_coeff)))
        self.tensor_policy: Any = None

    def use_tensor_path(self, policy: Any) -> bool:
        """Score with ``policy`` (a :class:`~rlte_plugins.policies.actor_critic.TensorActorCritic`): one pass on
        plain tensors for the log-probability, entropy and value of every step."""
        self.tensor_policy = policy
        return True

    def _evaluate(self, td: TensorDictBase) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``log pi(a|x)`` and the policy's entropy ``[rows, T]``, ``V(x)`` ``[rows, T, 1]``."""
        keys = self.tensor_keys
        if self.tensor_policy is not None:
            policy = self.tensor_policy
            return policy.evaluate(td.get(policy.obs_key), td.get(keys.action))
        dist = self.actor_network.get_dist(td.select(*self.actor_network.in_keys))
        log_prob = dist.log_prob(td.get(keys.action))
        if has_analytic_entropy(dist):
            entropy = dist.entropy()
        else:  # one reparameterised draw, as TorchRL's losses estimate it
            entropy = -rsample_and_log_prob(dist, (1,))[1].mean(0)
        value = self.critic_network(td.select(*self.critic_network.in_keys)).get(keys.value)
        return log_prob, entropy, value

    @torch.no_grad()
    def _next_values(self, td: TensorDictBase, value: torch.Tensor) -> torch.Tensor:
        """``V(x_{s+1})``: the next step's value within an unroll; the critic on the stored next observation after
        the last step and where an episode ended (the only next observations evaluated again)."""
        nxt = td.get("next").select(*self.critic_network.in_keys)
        return next_state_values(
            value, nxt, td.get(("next", self.tensor_keys.done)),
            lambda rows: self.critic_network(rows.clone(False)).get(self.tensor_keys.value),
        )  # fmt: skip

    @torch.no_grad()
    def targets(
        self, td: TensorDictBase, log_prob: torch.Tensor | None = None, value: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """V-trace on ``td`` (``[rows, T]`` unrolls) with the current parameters (or the given ``log_prob`` and
        ``value`` of its steps): ``advantage`` (``rho_s (r_s + gamma v_{s+1} - V(x_s))``), ``value_target``
        (``v_s``), ``state_value`` and the unclipped ``importance_weight``, each ``[rows, T, 1]``."""
        keys = self.tensor_keys
        if log_prob is None or value is None:
            log_prob, _, value = self._evaluate(td)
        value = value.detach().float()
        shape = value.shape
        log_pi = log_prob.detach().float().reshape(shape)
        log_mu = td.get(keys.sample_log_prob).float().reshape(shape)
        nxt = td.get("next")
        advantage, target = vtrace_advantage_estimate(
            self.gamma, log_pi, log_mu, value, self._next_values(td, value).float(),
            nxt.get(keys.reward).float().reshape(shape), nxt.get(keys.done).reshape(shape),
            nxt.get(keys.terminated).reshape(shape), rho_thresh=self.rho_bar, c_thresh=self.c_bar, time_dim=1,
        )  # fmt: skip
        return {"advantage": advantage, "value_target": target, "state_value": value,
                "importance_weight": (log_pi - log_mu).exp()}  # fmt: skip

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        log_prob, entropy, value = self._evaluate(tensordict)
        targets = self.targets(tensordict, log_prob, value)
        advantage = targets["advantage"]
        if self.normalize_advantage:
            advantage = (advantage - advantage.mean()) / advantage.std().clamp_min(1e-8)
        policy_loss = -(log_prob.reshape(advantage.shape) * advantage)
        value_loss = 0.5 * (targets["value_target"] - value).pow(2)
        entropy = entropy.float()
        rho = targets["importance_weight"]
        out = {
            "loss_objective": policy_loss.mean() * self.loss_scale,
            "loss_critic": self.critic_coeff * value_loss.mean() * self.loss_scale,
            "loss_entropy": -self.entropy_coeff * entropy.mean() * self.loss_scale,
            "policy_loss": policy_loss.detach().mean(),
            "value_loss": value_loss.detach().mean(),
            "entropy": entropy.detach().mean(),
            "importance_weight": rho.mean(),
            "rho_clip_fraction": (rho > self.rho_bar).float().mean(),
        }
        return TensorDict._new_unsafe(out, batch_size=torch.Size([]))


class IMPALA(OnPolicyAgent):
    """IMPALA: V-trace actor-critic on unrolls of a lagging behaviour policy; the paper's Atari settings.

    Defaults: the paper's Atari hyperparameters (Espeholt et al. 2018, appendix; cleanba's IMPALA uses the same): 32
    unrolls of 20 steps per learner batch, one gradient step per batch, RMSprop (lr 6e-4 annealed linearly to 0,
    decay 0.99, epsilon 0.01, no momentum) with the gradient norm clipped at 40, entropy cost 0.01, baseline cost 0.5
    on ``0.5 * (v_s - V)^2``, gamma 0.99, ``rho_bar = c_bar = 1``; every loss summed over the batch's steps, as in
    the authors' ``scalable_agent`` learner; ``clip_rewards`` is the paper's reward clipping to [-1, 1]. torch's
    RMSprop is not TensorFlow's, which the paper used (epsilon inside the square root, mean square starting at 1): with
    epsilon 0.01 the first steps here are larger, as in torchbeast. Terminated
    and truncated stay distinct: a truncated episode bootstraps from its last observation's value.

    Collection: ``direct``/``torchrl`` act with the learner's weights (V-trace is then n-step returns, with importance
    weights of 1); ``policy_lag=k`` acts with the learner's weights of ``k`` updates before, in-process and
    deterministic; ``collection="async"`` runs ``num_workers`` processes of TorchRL's ``MultiAsyncCollector``, whose
    weights are pushed after each update (a worker takes them mid-unroll where the paper's actors wait for the next
    unroll; V-trace stays exact, each step storing the log-probability of the weights that acted, and
    ``charts/policy_version_ambiguous`` is the share of frames whose weights changed while their action was chosen);
    ``collection="ray"`` does the same with ``num_workers`` Ray actors (TorchRL's ``RayCollector``), each frame stamped
    alike; they take new weights between unrolls, as the paper's actors do (no frame is ambiguous).
    ``charts/policy_lag`` is the mean number of learner updates between the weights that acted and the update that
    learns from them.

    Components as :class:`~rlte_plugins.agents.ppo.PPO` (feed-forward policies).

    Examples:
        >>> import rlte_plugins
        >>> agent = rlte_plugins.make("agent", "impala", env="torch_cartpole", num_envs=4, num_steps=5, policy_lag=2)
        >>> stats = agent.train(60, progress=False)
        >>> [h["charts/policy_lag"] for h in agent.history]
        [0.0, 1.0, 2.0]
    """

    name = "impala"

    @dataclasses.dataclass
    class Config(OnPolicyConfig):
        num_envs: int = option(32, "parallel envs: the unrolls of a learner batch (the paper's batch size)", low=1)
        num_steps: int = option(20, "unroll length: steps per env per batch", low=1)
        epochs: int = option(1, "passes over each batch (the paper: 1)", low=1)
        num_minibatches: int = option(1, "minibatches of whole unrolls per pass (must divide the envs)", low=1)
        lr: float | str = option(6e-4, "learning rate: a number or 'linear(start, end, frames)'", schedule=True,
                                 types=(int, float, str), low=0.0)  # fmt: skip
        gae_lambda: float = option(1.0, "not read: V-trace's traces are cut by c_bar, with no lambda (only 1)",
                                   low=1.0, high=1.0)  # fmt: skip
        value_coef: float = option(0.5, "baseline cost: weight of 0.5 * (v_s - V(x_s))^2", low=0.0)
        max_grad_norm: float | None = option(40.0, "global gradient-norm clip (null: off)", types=_MAYBE_NUMBER,
                                             low=0.0, low_open=True)  # fmt: skip
        normalize_advantage: bool = option(False, "normalise the V-trace advantages over each minibatch")
        intrinsic_coef: float = option(1.0, "weight of the intrinsic reward (set(reward=...)), added before V-trace",
                                       low=0.0)  # fmt: skip
        optimizer: str = option("rmsprop", "rmsprop (the paper's) or adam", choices=("rmsprop", "adam"))
        rmsprop_decay: float = option(0.99, "RMSprop decay of the mean square (torch's alpha)", low=0.0, high=1.0)
        rmsprop_eps: float = option(0.01, "RMSprop epsilon", low=0.0, low_open=True)
        rmsprop_momentum: float = option(0.0, "RMSprop momentum", low=0.0, high=1.0)
        rho_bar: float = option(1.0, "V-trace's clip of the importance weights rho (targets and policy gradient)",
                                low=0.0, low_open=True)  # fmt: skip
        c_bar: float = option(1.0, "V-trace's clip of the trace coefficients c", low=0.0, low_open=True)
        clip_rewards: bool = option(False, "clip rewards to [-1, 1] before V-trace (the paper's Atari setting)")
        policy_lag: int = option(0, "act with the learner's weights of this many updates before (synchronous, "
                                 "deterministic; not with collection='async' or 'ray')", low=0)  # fmt: skip
        num_workers: int = num_workers_option("worker processes of collection='async', Ray workers of collection='ray'")
        collection: str = collection_option(STRATEGIES + LAGGED_STRATEGIES, "torchrl, direct, async (worker processes: "
                                            "TorchRL's MultiAsyncCollector) or ray (Ray workers: TorchRL's "
                                            "RayCollector), both asynchronous")  # fmt: skip

    loss_metrics: ClassVar[dict[str, str]] = {
        "policy_loss": "losses/policy_loss",
        "value_loss": "losses/value_loss",
        "entropy": "losses/entropy",
        "importance_weight": "losses/importance_weight",
        "rho_clip_fraction": "losses/rho_clipfrac",
    }

    # -- configuration ------------------------------------------------------------------------------------
    def check_config(self) -> None:
        super().check_config()
        c = self.config
        refused = {
            "recurrent": (c.recurrent is not None, "recurrent policies are not supported (use recurrent=null)"),
            "intrinsic_critic": (c.intrinsic_critic, "a separate intrinsic critic is not supported; an intrinsic "
                                 "reward is added to the reward V-trace reads"),
            "scale_rewards": (c.scale_rewards, "reward scaling is not supported; clip_rewards is the paper's "
                              "normalisation"),
        }  # fmt: skip
        for name, (bad, why) in refused.items():
            if bad:
                raise ComponentArgumentError(f"{self.owner}: {name}: {why}")
        if self.asynchronous and c.policy_lag:
            raise ComponentArgumentError(
                f"{self.owner}: policy_lag delays the weights of synchronous collection; collection={c.collection!r} "
                "has its workers' own lag: set one or the other"
            )
        if self.asynchronous and c.normalize_observation:
            raise ComponentArgumentError(
                f"{self.owner}: normalize_observation is not supported with collection={c.collection!r} (the "
                "statistics would be updated in the workers)"
            )

    def check_env(self) -> None:
        super().check_env()
        envs = int(self.env.batch_size.numel())
        if self.asynchronous and envs % self.config.num_workers:
            raise ComponentArgumentError(f"{self.owner}: num_workers ({self.config.num_workers}) must divide the env's "
                                         f"{envs} envs")  # fmt: skip

    @property
    def asynchronous(self) -> bool:
        """Whether workers collect while the learner trains (``async``, ``ray``), with the weights it pushes."""
        return self.config.collection in (*LAGGED_STRATEGIES, "ray")

    @property
    def sequence_length(self) -> int:
        """Minibatches are whole unrolls: V-trace runs backwards over each."""
        return self.config.num_steps

    # -- building -----------------------------------------------------------------------------------------
    def make_loss(self) -> VTraceLoss:
        c = self.config
        # entropy_coeff is set from the entropy_coef schedule before every update
        return VTraceLoss(
            self.policy.actor, self.policy.critic, gamma=c.gamma, rho_bar=c.rho_bar, c_bar=c.c_bar,
            entropy_coeff=1.0, critic_coeff=c.value_coef, loss_scale=self.frames_per_batch // c.num_minibatches,
            normalize_advantage=c.normalize_advantage,
        )  # fmt: skip

    def engine_options(self) -> dict[str, Any]:
        """RMSprop with the paper's decay, epsilon and momentum (or Adam with ``adam_eps``)."""
        c = self.config
        if c.optimizer == "adam":
            return {"eps": c.adam_eps}
        return {"optimizer": "rmsprop", "eps": c.rmsprop_eps, "alpha": c.rmsprop_decay, "momentum": c.rmsprop_momentum}

    def _build(self) -> None:
        super()._build()
        c = self.config
        self._pushed = -1  # the version the async workers were last sent
        self._snapshots: collections.deque[tuple[int, dict[str, torch.Tensor]]] | None = None
        if c.policy_lag:
            self._snapshots = collections.deque([(0, self._actor_weights())], maxlen=c.policy_lag + 1)

    def _actor_weights(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in self.policy.actor.state_dict().items()}

    def _build_collection(
        self, acting: Any, pre: Any = None, tensor_actor: Any = None, collect_actor: Any = None
    ) -> None:
        c = self.config
        self.behaviour: Any = None
        if c.collection == "async":
            from rlte_plugins.collection import make_collection

            self.collection_env = self.env
            self.collection = make_collection(
                "async", self.env, self.policy.actor, c.num_steps, self.device, reference=self.env_reference(),
                num_workers=c.num_workers, seed=self.seed,
            )  # fmt: skip
            return
        if c.collection == "ray":
            self._build_ray_collection(self.policy.actor, lagged=True)
            return
        if c.policy_lag:
            # a second copy of the policy acts; the learner's weights of policy_lag updates before are loaded into it
            # before each batch
            self.behaviour = copy.deepcopy(self.policy)
            path = self.behaviour.tensor_path() if hasattr(self.behaviour, "tensor_path") else None
            tensor_actor = None if path is None else self._tensor_actor(path)
            acting = self.behaviour.actor
            collect_actor = acting if pre is None else TensorDictSequential(pre, acting)
        super()._build_collection(acting, pre, tensor_actor, collect_actor)

    # -- the algorithm ------------------------------------------------------------------------------------
    @torch.no_grad()
    def collect(self) -> TensorDictBase:
        """One batch, ``[num_envs, num_steps]``, with ``policy_version``: the learner's update count when the
        acting weights were taken (per frame)."""
        self.build()
        version: int | None = self.iterations
        if self._snapshots is not None:
            if not self._snapshots:  # loaded from a run without lag: its weights now are where the lag starts
                self._snapshots.append((self.iterations, self._actor_weights()))
            version, weights = self._snapshots[0]
            self.behaviour.actor.load_state_dict(weights)
        elif self.asynchronous:
            version = None  # the workers stamp each frame
            self._push()  # the first batch, or the first after loading a checkpoint
        batch = super().collect()
        if version is not None:
            batch.set(VERSION_KEY, torch.full(batch.shape, version, dtype=torch.long, device=batch.device))
        return batch

    def step(self, batch: TensorDictBase | None = None) -> dict[str, Any]:
        """Learn from ``batch`` (default: the last collected); logs ``charts/policy_lag`` where its frames carry their
        ``policy_version``, then hands the new weights on (the lagged snapshots, the async workers)."""
        chosen = self._batch if batch is None else batch
        version = None if chosen is None else chosen.get(VERSION_KEY, None)
        lag = None if version is None else (self.iterations - version.float()).mean()
        end = None if chosen is None else chosen.get(VERSION_END_KEY, None)
        stats = super().step(batch)
        if lag is not None:
            stats["charts/policy_lag"] = lag
        if end is not None:  # async: frames whose weights changed while their action was chosen
            stats["charts/policy_version_ambiguous"] = (end != version).float().mean()
        if self._snapshots is not None:
            self._snapshots.append((self.iterations, self._actor_weights()))
        if self.asynchronous:
            self._push()
        return stats

    def _push(self) -> None:
        """Send the learner's weights to the asynchronous workers, unless they have them already."""
        if self._pushed != self.iterations:
            self.collection.push(self.policy.actor, self.iterations)
            self._pushed = self.iterations

    def _advantages(self, data: TensorDictBase) -> TensorDictBase:
        """The batch as the update reads it (rewards clipped where asked), with V-trace's targets from the current
        parameters (logged; the loss computes them again on every minibatch)."""
        nxt = data.get("next")
        reward = nxt.get("reward").float()
        if self.config.clip_rewards:
            reward = reward.clamp(-1.0, 1.0)
        critic_keys = [k for k in self.policy.critic.in_keys if k in nxt.keys(True)]
        out = data.select(*self._keep_keys(data))
        out.set("next", nxt.select(*critic_keys, "done", "terminated").set("reward", reward))
        out.update(self.loss_module.targets(out))
        return out

    def _samples(self, rollout: TensorDictBase) -> TensorDictBase:
        """The rows the update shuffles: whole unrolls (``[num_envs, num_steps]``)."""
        return rollout

    def _update(self, flat: TensorDictBase) -> dict[str, torch.Tensor]:
        # the loss normalises the advantages it computes itself (the batch's are from before the update)
        means = self._epochs(flat, self.config.epochs, self._loss_terms, list(self.metrics), early_stop=True,
                             normalize_advantage=False)  # fmt: skip
        return dict(zip(self.metrics.values(), means, strict=True))

    # -- checkpoints --------------------------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        lagged = None if self._snapshots is None else [[v, w] for v, w in self._snapshots]
        return {**super()._state(), "lagged_weights": lagged}

    def _load_state(self, state: Any) -> None:
        super()._load_state(state)
        if self._snapshots is not None:
            self._snapshots.clear()  # the build's snapshot is of weights the checkpoint replaced
            self._snapshots.extend((int(v), w) for v, w in state.get("lagged_weights") or ())
