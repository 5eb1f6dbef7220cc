"""Phasic Policy Gradient (Cobbe et al., 2021): PPO's policy phase, then every ``n_pi`` iterations an auxiliary
phase that distils the value targets into the policy network while a behaviour-cloning term holds the policy."""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Any, ClassVar

import torch
from tensordict import TensorDict, TensorDictBase
from torch import distributions as D

from rlte_plugins.agents.base import option
from rlte_plugins.agents.drac import ProcgenConfig
from rlte_plugins.agents.ppo import PPO
from rlte_plugins.collection.direct import run_chunked
from rlte_plugins.errors import CheckpointError, ComponentArgumentError
from rlte_plugins.optim.schedules import Schedule


class PPG(PPO):
    """Phasic Policy Gradient: PPO with separate policy and value networks, and an auxiliary phase.

    The policy phase is PPO (clipped objective, value loss, entropy bonus) for ``n_pi`` iterations; each stores
    its observations, as the env gives them (``uint8`` pixels stay ``uint8``), and its value targets ``V_targ``
    (GAE returns of that iteration, as the reference keeps them: not recomputed before the auxiliary phase).
    Then the auxiliary phase takes ``aux_epochs`` passes over everything stored, in ``aux_num_minibatches`` x
    ``n_pi`` minibatches, on ``L_joint = 0.5 (V_aux(s) - V_targ)^2 + beta_clone KL(pi_old(.|s) || pi(.|s))`` for
    the policy network (``V_aux``: the auxiliary head on its features; ``pi_old``: the policy right before the
    phase) plus ``0.5 (V(s) - V_targ)^2`` for the value network. The KL is exact where torch has it for the
    distribution (categorical, diagonal Gaussian), else estimated from one action drawn from ``pi_old`` per state.
    The phases have an Adam optimiser each, as in the reference code, so neither phase's moment estimates
    steer the other's steps.

    Defaults are the paper's (and ``openai/phasic-policy-gradient``'s ``train.py``): 64 envs x 256 steps, n_pi 32,
    E_pi = E_V = 1 (policy and value train in one loss), E_aux 6, 16 auxiliary minibatches per stored iteration
    (512 minibatches of 1,024 frames), beta_clone 1, Adam at 5e-4 (eps 1e-8) in both phases without annealing or
    gradient clipping, gamma 0.999, GAE lambda 0.95, clip 0.2 (no value clipping), entropy 0.01, value weight 0.5
    on the squared error, advantages normalised over the whole batch, rewards divided by the running std of the
    discounted return (discounted with ``gamma`` and unclipped, where the reference's normaliser discounts with
    0.99 and clips at 10). Components: ``encoder`` (``espeholt_resnet`` for Procgen, as the paper), ``policy``
    (``phasic_actor_critic``), ``distribution``, an optional intrinsic ``reward``.

    Memory: the stored observations are ``n_pi x num_envs x num_steps`` rows, held on the training device; at the
    paper's settings on Procgen (``uint8`` 3x64x64) that is 524,288 frames, 6.0 GiB, plus 2 MiB of value targets
    and, during the auxiliary phase, the old policy's parameters (30 MiB of logits). :attr:`aux_buffer_bytes`
    gives the figure; building refuses a buffer larger than the memory available on the device. A checkpoint
    carries the part filled so far, so that a resumed run goes through the same auxiliary phase
    (``aux_buffer_in_checkpoint=False`` leaves it out: the resumed run then starts a new cycle of ``n_pi``).

    Examples:
        >>> import rlte_plugins
        >>> agent = rlte_plugins.make("agent", "ppg", env="torch_cartpole", num_envs=4, num_steps=16, n_pi=2,
        ...                           aux_epochs=2, aux_num_minibatches=2, seed=0)
        >>> stats = agent.train(128, progress=False)  # two policy-phase iterations, then an auxiliary phase
        >>> sorted(k for k in stats if k.startswith("losses/aux") or k == "losses/bc_kl")
        ['losses/aux_real_value_loss', 'losses/aux_value_loss', 'losses/bc_kl']
        >>> agent.aux_buffer_bytes  # 2 iterations x 64 frames x (4 floats of observation + 1 value target)
        2560
    """

    name = "ppg"
    normalize_per_batch = True  # as the reference does (PPO: per minibatch)

    @dataclasses.dataclass
    class Config(ProcgenConfig):
        epochs: int = option(1, "policy-phase passes over each batch (E_pi = E_V: policy and value in one loss)",
                             low=1)  # fmt: skip
        anneal_lr: bool = option(False, "anneal numeric lr and aux_lr linearly to 0 over train()'s total_frames")
        value_coef: float = option(0.5, "weight of the squared value error in the policy phase", low=0.0)
        max_grad_norm: float | None = option(None, "global gradient-norm clip in both phases (null: off)",
                                             types=(int, float, type(None)), low=0.0, low_open=True)  # fmt: skip
        adam_eps: float = option(1e-8, "Adam epsilon (both phases)", low=0.0, low_open=True)
        normalize_advantage: bool = option(True, "normalise advantages over each batch")
        scale_rewards: bool = option(True, "divide rewards by the running std of the discounted return")
        clip_value: float | None = option(None, "clip the value update around the old value (null: off)",
                                          types=(int, float, type(None)), low=0.0, low_open=True)  # fmt: skip
        n_pi: int = option(32, "policy-phase iterations stored between auxiliary phases (N_pi)", low=1)
        aux_epochs: int = option(6, "auxiliary-phase passes over the stored iterations (E_aux)", low=1)
        aux_num_minibatches: int = option(16, "auxiliary-phase minibatches per pass and stored iteration (must "
                                          "divide the batch)", low=1)  # fmt: skip
        beta_clone: float = option(1.0, "weight of the behaviour-cloning KL to the pre-phase policy", low=0.0)
        aux_lr: float | str = option(5e-4, "auxiliary-phase learning rate: a number or 'linear(start, end, "
                                     "frames)'", schedule=True, types=(int, float, str), low=0.0)  # fmt: skip
        aux_buffer_in_checkpoint: bool = option(True, "checkpoints carry the iterations stored since the last "
                                                "auxiliary phase (exact resume); false: a resumed run starts a new "
                                                "n_pi cycle")  # fmt: skip

    #: auxiliary-phase loss output -> logged name; logged for the iterations that end with an auxiliary phase
    aux_metrics: ClassVar[dict[str, str]] = {
        "loss_aux_value": "losses/aux_value_loss",
        "loss_aux_real_value": "losses/aux_real_value_loss",
        "bc_kl": "losses/bc_kl",
    }

    # -- configuration ------------------------------------------------------------------------------------
    def check_config(self) -> None:
        super().check_config()
        c = self.config
        if c.recurrent is not None:
            raise ComponentArgumentError(f"{self.owner}: recurrent policies are not supported (the auxiliary phase "
                                         "replays single observations, without recurrent states)")  # fmt: skip
        if (c.aux_num_minibatches * c.n_pi) % c.grad_accumulation:
            raise ComponentArgumentError(
                f"{self.owner}: grad_accumulation ({c.grad_accumulation}) must divide the auxiliary phase's "
                f"aux_num_minibatches x n_pi ({c.aux_num_minibatches * c.n_pi}) minibatches"
            )

    def check_env(self) -> None:
        super().check_env()
        c = self.config
        if self.frames_per_batch % c.aux_num_minibatches:
            raise ComponentArgumentError(
                f"{self.owner}: the env's {self.env.batch_size.numel()} envs x num_steps {c.num_steps} = "
                f"{self.frames_per_batch} frames per batch must split into aux_num_minibatches "
                f"({c.aux_num_minibatches}) equal parts"
            )

    def default_component(self, slot: str) -> Any:
        if slot == "policy":
            return "phasic_actor_critic"
        return super().default_component(slot)

    # -- building -----------------------------------------------------------------------------------------
    def _build(self) -> None:
        policy = self.components["policy"]
        if not hasattr(policy, "aux_value"):
            made = getattr(policy, "_rlte_component", None)  # what rlte_plugins.make recorded
            name = made.name if made is not None else type(policy).__name__
            raise ComponentArgumentError(f"{self.owner} trains an auxiliary value head on the policy's features: "
                                         f"use policy 'phasic_actor_critic', got {name!r}")  # fmt: skip
        super()._build()
        c = self.config
        spec = self.env.observation_spec
        present = set(spec.keys(True, True))
        #: what the networks read, stored per row; the value targets beside them
        self._aux_keys = [k for k in dict.fromkeys([*self.policy.actor.in_keys, *self.policy.critic.in_keys])
                          if k in present]  # fmt: skip
        batch_dims = len(self.env.batch_size)
        shapes = {}
        for key in self._aux_keys:
            # a normalised observation is stored as the policy saw it: in floats
            normalised = self.obs_norm is not None and key == self.obs_norm.key
            shapes[key] = (tuple(spec[key].shape[batch_dims:]), torch.float32 if normalised else spec[key].dtype)
        shapes["value_target"] = ((1,), torch.float32)
        rows = c.n_pi * self.frames_per_batch
        self.aux_buffer_bytes = rows * sum(math.prod(s) * d.itemsize for s, d in shapes.values())
        available = _available_memory(self.device)
        if available is not None and self.aux_buffer_bytes > available:
            raise ComponentArgumentError(
                f"{self.owner}: the auxiliary phase stores n_pi ({c.n_pi}) x {self.frames_per_batch} frames, "
                f"{self.aux_buffer_bytes / 2**30:.2f} GiB, and {self.device} has {available / 2**30:.2f} GiB "
                "available: lower n_pi, num_envs or num_steps"
            )
        # untouched pages of a large allocation cost no memory until the iterations that fill them
        self._aux_buffer = TensorDict(
            {k: torch.empty((rows, *s), dtype=d, device=self.device) for k, (s, d) in shapes.items()},
            batch_size=[rows], device=self.device,
        )  # fmt: skip
        self._aux_position = 0  # iterations stored since the last auxiliary phase
        self._aux_old: TensorDictBase | None = None
        self._exact_kl: bool | None = None
        self._dist_keys = list(self.policy.actor.dist_params_keys)
        self.aux_engine = self.make_engine(list(self.policy.parameters()), c.aux_lr)

    def set_total_frames(self, total_frames: int) -> None:
        super().set_total_frames(total_frames)
        if self.config.anneal_lr and not isinstance(self.config.aux_lr, str):
            self.aux_engine.lr = Schedule(float(self.config.aux_lr), 0.0, total_frames)

    # -- the update ---------------------------------------------------------------------------------------
    def _update(self, flat: TensorDictBase) -> dict[str, torch.Tensor]:
        """The policy phase on this batch, the batch stored, and every ``n_pi`` batches the auxiliary phase."""
        c = self.config
        stats = super()._update(flat)
        self._store(flat)
        if self._aux_position == c.n_pi:
            stats.update(self._auxiliary_phase())
        return stats

    @torch.no_grad()
    def _store(self, flat: TensorDictBase) -> None:
        n = flat.shape[0]
        rows = slice(self._aux_position * n, (self._aux_position + 1) * n)
        for key in (*self._aux_keys, "value_target"):
            self._aux_buffer.get(key)[rows].copy_(flat.get(key).reshape(n, *self._aux_buffer.get(key).shape[1:]))
        self._aux_position += 1

    def _auxiliary_phase(self) -> dict[str, torch.Tensor]:
        """``aux_epochs`` passes of :meth:`_aux_loss_terms` over the stored iterations, with the auxiliary
        optimiser; returns the logged means."""
        c = self.config
        self._aux_position = 0
        with torch.no_grad():
            # pi_old: the policy's distribution parameters right before the phase, fixed through it
            old = run_chunked(self.policy.actor.get_dist_params, self._aux_buffer.select(*self._aux_keys),
                              c.chunk_size, self._dist_keys)  # fmt: skip
            # written in place after the first phase: a CUDA graph of the loss keeps reading where it was captured
            self._aux_old = old if self._aux_old is None else self._aux_old.update_(old)
        rows = self._aux_buffer.shape[0]
        # the passes shuffle row indices; each chunk gathers its own rows, so no pass copies the whole buffer
        index = TensorDict(index=torch.arange(rows, device=self.device), batch_size=[rows])
        self.aux_engine.set_lr(self.frames - self.frames_per_batch)
        policy_engine, self.engine = self.engine, self.aux_engine  # _epochs steps self.engine
        try:
            means = self._epochs(index, c.aux_epochs, self._aux_loss_terms, list(self.aux_metrics),
                                 num_minibatches=c.aux_num_minibatches * c.n_pi, normalize_advantage=False)  # fmt: skip
        finally:
            self.engine = policy_engine
        # the run loop's non-finite check reads the policy phase's engine: it sees this phase's norms too
        policy_engine.grad_norm = torch.maximum(policy_engine.grad_norm, self.aux_engine.read_grad_norm())
        return dict(zip(self.aux_metrics.values(), means, strict=True))

    def _aux_loss_terms(self, piece: TensorDictBase) -> tuple[torch.Tensor, torch.Tensor]:
        """``L_joint`` on the policy network and the value distillation on the value network, for the stored
        rows ``piece["index"]``."""
        index = piece.get("index")
        rows = self._aux_buffer[index]
        actor = self.policy.actor
        td = actor.get_dist_params(rows.select(*self._aux_keys))
        # in float32 as pi_old is: a KL between half-precision logits comes out negative by rounding alone
        params = td.select(*self._dist_keys).apply(lambda x: x.float() if x.is_floating_point() else x)
        kl = self._policy_kl(actor.build_dist_from_params(self._aux_old[index]), actor.build_dist_from_params(params))
        aux = self.policy.aux_value(td).get("aux_state_value").float()
        value = self.policy.critic(self._critic_input(rows)).get("state_value").float()
        target = rows.get("value_target")
        out = TensorDict(
            loss_aux_value=0.5 * (aux - target).pow(2).mean(),
            loss_aux_real_value=0.5 * (value - target).pow(2).mean(),
            loss_bc=self.config.beta_clone * kl.mean(),
            bc_kl=kl.detach().mean(),
        )  # fmt: skip
        return self._loss_terms_of(out, list(self.aux_metrics))

    def _policy_kl(self, old: D.Distribution, new: D.Distribution) -> torch.Tensor:
        """``KL(old || new)`` per state: exact where torch registers it, else ``(r - 1) - log r`` at one action
        drawn from ``old`` (``r = new / old``): unbiased, non-negative, and its gradient is the KL's."""
        if self._exact_kl is not False:
            try:
                kl = D.kl_divergence(old, new)
                self._exact_kl = True
                return kl.float()
            except NotImplementedError:
                self._exact_kl = False
        action = old.sample()
        log_ratio = (new.log_prob(action) - old.log_prob(action)).float()
        return log_ratio.exp() - 1 - log_ratio

    # -- checkpoints --------------------------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        position = self._aux_position if self.config.aux_buffer_in_checkpoint else 0
        filled = position * self.frames_per_batch
        # copies on the host (a slice would save the whole buffer's storage; a device clone would need as much
        # free device memory again)
        stored = [self._aux_buffer.get(k)[:filled].to("cpu", copy=True) for k in (*self._aux_keys, "value_target")]
        return {**super()._state(), "aux_engine": self.aux_engine.state_dict(), "aux_position": position,
                "aux_buffer": stored}  # fmt: skip

    def _load_state(self, state: Any) -> None:
        super()._load_state(state)
        self.aux_engine.load_state_dict(state["aux_engine"])
        position = int(state["aux_position"])
        if position >= self.config.n_pi:
            raise CheckpointError(f"{self.owner}: the checkpoint holds {position} stored iterations of the policy "
                                  f"phase; n_pi must be above that, got {self.config.n_pi}")  # fmt: skip
        filled = position * self.frames_per_batch
        for key, tensor in zip((*self._aux_keys, "value_target"), state["aux_buffer"], strict=True):
            self._aux_buffer.get(key)[:filled].copy_(tensor)
        self._aux_position = position


def _available_memory(device: torch.device) -> int | None:
    """Bytes that can still be allocated on ``device`` (``None`` where it cannot be told)."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    if device.type != "cpu":
        return None
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None
