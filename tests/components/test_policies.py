"""Policies produce what TorchRL's losses consume: each one through its loss, forward and backward."""

from __future__ import annotations

import pytest
import torch
from gradients import assert_trained, assert_untouched
from tensordict import TensorDict
from torchrl.data import Bounded, Categorical, Composite, Unbounded

import rlte_plugins
from rlte_plugins.encoders.base import Encoder
from rlte_plugins.errors import SpecMismatchError

OBS = Composite(observation=Unbounded((5,)))


def batch(n, action):
    flag = torch.zeros(n, 1, dtype=torch.bool)
    nxt = TensorDict(observation=torch.randn(n, 5), reward=torch.randn(n, 1), done=flag, terminated=flag.clone(),
                     truncated=flag.clone(), batch_size=[n])  # fmt: skip
    return TensorDict(observation=torch.randn(n, 5), action=action, next=nxt, batch_size=[n])


def build(policy, dist, action_spec, **kwargs):
    return rlte_plugins.make("policy", policy, hidden=[32], **kwargs).build(
        rlte_plugins.make("encoder", "mlp", num_cells=[16]),
        None if dist is None else rlte_plugins.make("distribution", dist),
        OBS,
        action_spec,
    )


def backward_all(losses, module):
    """Every trainable parameter of ``module`` (the loss: it holds the critic copies it trains) gets a finite,
    non-zero gradient from the summed ``loss_*`` terms."""
    sum(v for k, v in losses.items() if k.startswith("loss")).backward()
    assert_trained(((n, p) for n, p in module.named_parameters() if p.requires_grad), type(module).__name__)


def reached(losses, module):
    """For each ``loss_*`` term, the names of ``module``'s parameters it sends a non-zero gradient to."""
    named = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
    out = {}
    for key in [k for k in losses.keys() if k.startswith("loss")]:
        grads = torch.autograd.grad(losses[key], [p for _, p in named], retain_graph=True, allow_unused=True)
        out[key] = {n for (n, _), g in zip(named, grads, strict=True) if g is not None and g.any()}
        assert out[key], f"{key} reaches no parameter"
    return out


def only_under(names, prefix):
    return all(n.startswith(prefix) for n in names)


def test_td3_and_ddpg_losses():
    from torchrl.objectives import DDPGLoss, TD3Loss

    spec = Bounded(-1.0, 1.0, shape=(2,))
    policy = build("deterministic_double_critic", "truncated_normal_noise", spec)
    loss = TD3Loss(policy.actor, policy.qvalue, action_spec=spec, num_qvalue_nets=policy.num_qvalue_nets)
    out = loss(batch(8, spec.rand((8,))))
    reach = reached(out, loss)
    assert only_under(reach["loss_actor"], "actor_network_params")  # the actor loss leaves the critics alone
    assert only_under(reach["loss_qvalue"], "qvalue_network_params")  # target actions carry no actor gradient
    backward_all(out, loss)

    ddpg = build("deterministic_double_critic", "normal_noise", spec, num_qvalue_nets=1)
    dloss = DDPGLoss(ddpg.actor, ddpg.qvalue)
    out = dloss(batch(8, spec.rand((8,))))
    reach = reached(out, dloss)
    encoder = next(m for m in ddpg.actor.modules() if isinstance(m, Encoder))
    shared = {n for n, p in dloss.named_parameters() if any(p is q for q in encoder.parameters())}
    assert shared and shared <= reach["loss_value"]  # one critic: the shared encoder is trained by the critic loss
    assert only_under(reach["loss_value"] - shared, "value_network_params")  # but not the actor's trunk or head
    assert only_under(reach["loss_actor"], "actor_network_params")
    backward_all(out, dloss)


def test_sac_and_discrete_sac_losses():
    from torchrl.objectives import DiscreteSACLoss, SACLoss

    spec = Bounded(-2.0, 2.0, shape=(3,))
    policy = build("stochastic_double_critic", "squashed_normal", spec)
    loss = SACLoss(policy.actor, policy.qvalue, num_qvalue_nets=2, action_spec=spec)
    out = policy.actor(TensorDict(observation=torch.randn(8, 5), batch_size=[8]))
    assert out["action"].abs().max() <= 2.0
    dspec = Categorical(4)
    dpolicy = build("stochastic_double_critic", "categorical", dspec)
    dloss = DiscreteSACLoss(dpolicy.actor, dpolicy.qvalue, action_space="categorical", num_actions=4, num_qvalue_nets=2)
    for lossmod, data in ((loss, batch(8, spec.rand((8,)))), (dloss, batch(8, dspec.rand((8,))))):
        out = lossmod(data)
        reach = reached(out, lossmod)
        assert only_under(reach["loss_actor"], "actor_network_params")
        assert only_under(reach["loss_qvalue"], "qvalue_network_params")
        assert reach["loss_alpha"] == {"log_alpha"}
        backward_all(out, lossmod)


@pytest.mark.parametrize("dueling", [False, True])
def test_double_dqn_loss(dueling):
    from torchrl.objectives import DQNLoss

    spec = Categorical(3)
    policy = build("double_q", None, spec, dueling=dueling)
    loss = DQNLoss(policy.qvalue, action_space=spec, delay_value=True, double_dqn=True)
    backward_all(loss(batch(8, spec.rand((8,)))), loss)


def test_shared_and_separate_critic_encoders():
    spec = Bounded(-1.0, 1.0, shape=(2,))
    shared = build("deterministic_double_critic", "normal_noise", spec)
    separate = build("deterministic_double_critic", "normal_noise", spec, shared_encoder=False)
    n_shared = sum(p.numel() for p in shared.parameters())
    n_separate = sum(p.numel() for p in separate.parameters())
    assert n_separate > n_shared  # the critic owns a copy of the encoder


def test_mismatched_distributions_refused():
    spec = Bounded(-1.0, 1.0, shape=(2,))
    with pytest.raises(SpecMismatchError, match="exploration noise"):
        build("deterministic_double_critic", "squashed_normal", spec)
    with pytest.raises(SpecMismatchError, match="stochastic distribution"):
        build("stochastic_double_critic", "normal_noise", spec)
    with pytest.raises(SpecMismatchError, match="discrete actions"):
        build("double_q", None, spec)


def test_daac_advantage_head_trains():
    env = rlte_plugins.make("env", "torch_cartpole", num_envs=4, seed=0)
    encoder = rlte_plugins.make("encoder", "mlp")
    policy = rlte_plugins.make("policy", "decoupled_actor_critic").build(
        encoder, rlte_plugins.make("distribution", "categorical"), env.observation_spec, env.action_spec
    )
    td = policy.advantage(policy.critic(policy.actor(env.reset())))
    assert td["advantage_pred"].shape == (4, 1)
    actor_params = {id(p) for p in policy.actor.parameters()}
    critic_params = {id(p) for p in policy.critic.parameters()}
    assert not actor_params & critic_params  # decoupled: nothing shared
    td["advantage_pred"].sum().backward()
    # the advantage loss shapes the actor's representation: its head and the actor's encoder learn from it ...
    assert_trained(policy.advantage.named_parameters(), "advantage head")
    assert_trained(encoder.named_parameters(), "actor encoder")
    # ... and nothing else: the critic is decoupled, and the sampled action carries no gradient into the logits
    assert_untouched(policy.critic.named_parameters(), "critic")
    encoder_params = {id(p) for p in encoder.parameters()}
    assert_untouched(((n, p) for n, p in policy.actor.named_parameters() if id(p) not in encoder_params), "actor head")


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_recurrent_actor_critic_collects_stepwise_and_trains_on_sequences(cell):
    from torchrl.envs import Compose, TransformedEnv
    from torchrl.modules import set_recurrent_mode
    from torchrl.objectives import ClipPPOLoss
    from torchrl.objectives.value import GAE

    base = rlte_plugins.make("env", "torch_cartpole", num_envs=3, seed=0)
    policy = rlte_plugins.make("policy", "recurrent_actor_critic", cell=cell, hidden_size=16).build(
        rlte_plugins.make("encoder", "mlp", num_cells=[16]), rlte_plugins.make("distribution", "categorical"),
        base.observation_spec, base.action_spec,
    )  # fmt: skip
    env = TransformedEnv(base, Compose(*policy.env_transforms()))
    with torch.no_grad():
        data = env.rollout(12, policy.actor, break_when_any_done=False)  # [3, 12]
    state_key = "recurrent_state_h" if cell == "lstm" else "recurrent_state"
    assert data["next", state_key].shape == (3, 12, 1, 16)
    assert not torch.equal(data[state_key][:, 1], data[state_key][:, 0])  # the state moves on
    with set_recurrent_mode(True):
        # the sequence pass from the stored initial states reproduces the step-by-step log-probabilities
        replay = policy.actor(data.clone().exclude("action_log_prob", "logits"))
        assert torch.allclose(replay["logits"], data["logits"], atol=1e-5)
        with torch.no_grad():
            GAE(gamma=0.99, lmbda=0.95, value_network=policy.critic, deactivate_vmap=True)(data)
        losses = ClipPPOLoss(policy.actor, policy.critic)(data)
    backward_all(losses, policy)
