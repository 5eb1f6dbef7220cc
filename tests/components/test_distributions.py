"""Distributions: reference formulas (squashed-normal change of variables, closed-form entropies), masks,
noise schedules, and TorchRL actor/loss compatibility."""

from __future__ import annotations

import math

import pytest
import torch
from tensordict import TensorDict
from torchrl.data import Binary, Bounded, Categorical, Composite, MultiCategorical, Unbounded
from torchrl.envs.utils import ExplorationType, set_exploration_type

import rlte_plugins
from rlte_plugins.distributions.discrete import IndependentBernoulli, MultiCategoricalDistribution
from rlte_plugins.distributions.squashed_normal import SquashedNormal
from rlte_plugins.errors import ComponentArgumentError, SpecMismatchError
from rlte_plugins.optim.schedules import Schedule


def test_squashed_normal_log_prob_matches_change_of_variables():
    torch.manual_seed(0)
    loc, scale = torch.randn(2, 3, dtype=torch.float64), torch.rand(2, 3, dtype=torch.float64) + 0.2
    low = torch.tensor([-1.0, -2.0, 0.0], dtype=torch.float64)
    high = torch.tensor([1.0, 2.0, 5.0], dtype=torch.float64)
    dist = SquashedNormal(loc, scale, low, high)
    action = dist.sample()
    for i in range(2):
        u = torch.atanh((action[i] - low) / (high - low) * 2 - 1)
        f = lambda v: low + (torch.tanh(v) + 1) * (high - low) / 2  # noqa: E731
        jac = torch.autograd.functional.jacobian(f, u)
        expected = torch.distributions.Normal(loc[i], scale[i]).log_prob(u).sum() - torch.logdet(jac)
        assert torch.allclose(dist.log_prob(action)[i], expected, atol=1e-6)
        # an action given from outside (a copy, scored by a fresh distribution) gives the same
        fresh = SquashedNormal(loc, scale, low, high)
        assert torch.allclose(fresh.log_prob(action.clone())[i], expected, atol=1e-6)


def test_squashed_normal_log_prob_matches_torchrl_tanh_normal():
    from torchrl.modules import TanhNormal

    torch.manual_seed(0)
    loc, scale = torch.randn(64, 3, dtype=torch.float64), torch.rand(64, 3, dtype=torch.float64) + 0.2
    low = torch.tensor([-1.0, -2.0, 0.0], dtype=torch.float64)
    high = torch.tensor([1.0, 2.0, 5.0], dtype=torch.float64)
    action = SquashedNormal(loc, scale, low, high).sample()  # |u| < 9: no saturation, where the two agree
    expected = TanhNormal(loc, scale, low=low, high=high, event_dims=1).log_prob(action)
    assert torch.allclose(SquashedNormal(loc, scale, low, high).log_prob(action), expected, atol=1e-8)


class _WideLocScale(torch.nn.Module):
    """loc 0, scale 20: most float32 draws saturate tanh onto the bounds."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.loc = torch.nn.Parameter(torch.zeros(dim))
        self.log_scale = torch.nn.Parameter(torch.full((dim,), math.log(20.0)))

    def forward(self, observation: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        shape = (*observation.shape[:-1], self.loc.shape[0])
        return self.loc.expand(shape), self.log_scale.exp().expand(shape)


@pytest.mark.parametrize("low,high", [(-1.0, 1.0), ([-2.0, 0.0], [2.0, 5.0])], ids=["unit", "rescaled"])
def test_squashed_normal_scores_saturated_actions_alike_at_sampling_and_in_the_loss(low, high):
    """What ProbabilisticActor writes as ``action_log_prob`` is what a loss recomputes from the stored action, for
    saturated actions too, so PPO's ratio is 1 before an update (the cached pre-tanh value broke both)."""
    from tensordict.nn import TensorDictModule
    from torchrl.modules import ProbabilisticActor, ValueOperator
    from torchrl.objectives import ClipPPOLoss

    torch.manual_seed(0)
    spec = Bounded(torch.tensor(low).expand(2), torch.tensor(high).expand(2), shape=(2,))
    actor = ProbabilisticActor(
        TensorDictModule(_WideLocScale(2), ["observation"], ["loc", "scale"]),
        in_keys=["loc", "scale"],
        distribution_class=SquashedNormal,
        distribution_kwargs={"low": spec.space.low, "high": spec.space.high, "score_draws": "from_action"},
        return_log_prob=True,
        spec=spec,
    )
    n = 4096
    with set_exploration_type(ExplorationType.RANDOM), torch.no_grad():
        data = actor(TensorDict(observation=torch.randn(n, 3), batch_size=[n]))
    on_bound = (data["action"] == spec.space.low) | (data["action"] == spec.space.high)
    assert on_bound.any(-1).float().mean() > 0.5  # the test is about saturation: most actions sit on a bound
    assert torch.isfinite(data["action_log_prob"]).all()

    stored = data.select("observation", "action", "action_log_prob").clone()
    rescored = actor.get_dist(stored).log_prob(stored["action"])  # a fresh distribution, from the stored action
    torch.testing.assert_close(rescored, stored["action_log_prob"], rtol=0.0, atol=1e-5)

    critic = ValueOperator(torch.nn.Linear(3, 1), in_keys=["observation"])
    loss = ClipPPOLoss(actor, critic, clip_epsilon=0.2)
    stored.set("advantage", torch.randn(n, 1))
    stored.set("value_target", torch.randn(n, 1))
    out = loss(stored)
    assert out["clip_fraction"].item() == 0.0
    assert out["kl_approx"].abs().item() < 1e-6
    assert out["max_ratio"].item() == pytest.approx(1.0, abs=1e-5)
    out["loss_objective"].backward()
    assert all(torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0 for p in actor.parameters())


def test_squashed_normal_integrates_to_one_and_entropy_estimate_is_unbiased():
    dist = SquashedNormal(torch.tensor([[0.3]]), torch.tensor([[0.7]]), -1.0, 1.0)
    grid = torch.linspace(-1 + 1e-6, 1 - 1e-6, 200001).reshape(-1, 1, 1)
    density = dist.log_prob(grid).exp().squeeze()
    assert abs(torch.trapezoid(density, grid.squeeze()).item() - 1.0) < 1e-3
    exact = -torch.trapezoid(density * density.log(), grid.squeeze()).item()
    estimate = dist.entropy(samples=200_000).item()
    assert abs(estimate - exact) < 0.01
    assert dist.mode.item() == pytest.approx(math.tanh(0.3))


def test_squashed_normal_gradients_flow_through_samples():
    loc = torch.zeros(4, 2, requires_grad=True)
    dist = SquashedNormal(loc, torch.ones(4, 2), -1.0, 1.0)
    a = dist.rsample()
    (a.sum() + dist.log_prob(a).sum()).backward()
    assert loc.grad is not None and loc.grad.abs().sum() > 0


def test_categorical_and_masked_entropies_match_closed_forms():
    features = torch.randn(5, 3) * 3  # far-from-uniform logits
    head = rlte_plugins.make("distribution", "categorical", init_gain=1.0).build(Categorical(4), in_features=3)
    actor = head.actor(None, Categorical(4))
    td = actor(TensorDict(features=features, batch_size=[5]))
    logp = td["logits"].log_softmax(-1)
    assert torch.allclose(actor.get_dist(td).entropy(), -(logp.exp() * logp).sum(-1), atol=1e-5)
    mask = torch.tensor([True, False, True, False]).expand(5, 4)
    masked_head = rlte_plugins.make("distribution", "masked_categorical", init_gain=1.0)
    masked = masked_head.build(Categorical(4), in_features=3).actor(None, Categorical(4))
    mtd = masked(TensorDict(features=features, action_mask=mask, batch_size=[5]))
    logq = mtd["logits"][:, [0, 2]].log_softmax(-1)
    mdist = masked.get_dist(mtd)
    assert torch.allclose(mdist.entropy(), -(logq.exp() * logq).sum(-1), atol=1e-5)
    samples = mdist.sample(torch.Size([1000]))
    assert set(samples.unique().tolist()) <= {0, 2}


def test_masked_categorical_checks_the_observation_spec():
    head = rlte_plugins.make("distribution", "masked_categorical", mask_key="legal")
    obs = Composite(observation=Unbounded((4,)))
    with pytest.raises(SpecMismatchError, match="'legal'"):
        head.build(Categorical(3), 8, observation_spec=obs)
    bad = Composite(observation=Unbounded((4,)), legal=Categorical(2, shape=(5,), dtype=torch.bool))
    with pytest.raises(SpecMismatchError, match="3 actions"):
        rlte_plugins.make("distribution", "masked_categorical", mask_key="legal").build(Categorical(3), 8, 0, bad)


def test_bernoulli_and_multi_categorical_reference_values():
    logits = torch.randn(6, 3)
    b = IndependentBernoulli(logits)
    p = torch.sigmoid(logits)
    expected_entropy = -(p * p.log() + (1 - p) * (1 - p).log()).sum(-1)
    assert torch.allclose(b.entropy(), expected_entropy, atol=1e-6)
    x = b.sample()
    assert x.dtype == torch.int64
    assert torch.allclose(b.log_prob(x), (x * p.log() + (1 - x) * (1 - p).log()).sum(-1), atol=1e-6)
    m = MultiCategoricalDistribution(torch.randn(6, 5), nvec=(3, 2))
    a = m.sample()
    parts = m.logits.split([3, 2], -1)
    ref = sum(torch.log_softmax(part, -1).gather(-1, a[:, i : i + 1]).squeeze(-1) for i, part in enumerate(parts))
    assert torch.allclose(m.log_prob(a), ref, atol=1e-6)
    assert m.mode.shape == (6, 2)


@pytest.mark.parametrize(
    "name,spec",
    [
        ("categorical", Categorical(3)),
        ("masked_categorical", Categorical(3)),
        ("bernoulli", Binary(n=4)),
        ("multi_categorical", MultiCategorical([3, 2])),
        ("diagonal_gaussian", Bounded(-1.0, 1.0, shape=(2,))),
        ("squashed_normal", Bounded(-1.0, 1.0, shape=(2,))),
    ],
)
def test_stochastic_heads_work_with_probabilistic_actor(name, spec):
    head = rlte_plugins.make("distribution", name).build(spec, in_features=8)
    actor = head.actor(None, spec)
    td = TensorDict(features=torch.randn(7, 8), action_mask=torch.ones(7, 3, dtype=torch.bool), batch_size=[7])
    out = actor(td.clone())
    assert out["action"].shape == (7, *spec.shape)
    assert out["action_log_prob"].shape == (7,)
    with set_exploration_type(ExplorationType.DETERMINISTIC):
        det1, det2 = actor(td.clone())["action"], actor(td.clone())["action"]
    assert torch.equal(det1, det2)
    logp = actor.get_dist(out).log_prob(out["action"])
    logp.sum().backward()
    assert all(p.grad is not None for p in head.parameters())


@pytest.mark.parametrize("name,spec", [("squashed_normal", Categorical(3)), ("bernoulli", Categorical(3)),
                                       ("multi_categorical", Bounded(-1.0, 1.0, shape=(2,))),
                                       ("normal_noise", Categorical(2))])  # fmt: skip
def test_mismatched_action_spaces_refused(name, spec):
    with pytest.raises(SpecMismatchError, match="use '"):
        rlte_plugins.make("distribution", name).build(spec, in_features=4)


def test_schedules():
    s = Schedule.parse("linear(1.0, 0.1, 500000)")
    assert s(0) == 1.0 and s(250_000) == pytest.approx(0.55) and s(10**7) == pytest.approx(0.1)
    for bad in ("lin(1, 2, 3)", "linear(1, 0.1, 0)", "linear(a, 1, 3)", None):
        with pytest.raises(ComponentArgumentError):
            Schedule.parse(bad)


@pytest.mark.parametrize("name", ["normal_noise", "truncated_normal_noise", "ornstein_uhlenbeck_noise"])
def test_noise_heads_explore_only_when_random_and_stay_in_bounds(name):
    spec = Bounded(torch.tensor([-1.0, 0.0]), torch.tensor([1.0, 2.0]), shape=(2,))
    head = rlte_plugins.make("distribution", name, seed=0, std=0.5).build(spec, in_features=4)
    actor = head.actor(None, spec)
    policy = head.exploration(actor)
    td = TensorDict(features=torch.randn(256, 4), batch_size=[256])
    clean = actor(td.clone())["action"]
    noisy = policy(td.clone())["action"]
    assert not torch.equal(clean, noisy)
    assert (noisy >= spec.space.low).all() and (noisy <= spec.space.high).all()
    with set_exploration_type(ExplorationType.DETERMINISTIC):
        assert torch.equal(policy(td.clone())["action"], clean)


def test_truncated_noise_is_clipped_where_asked_and_follows_its_schedule():
    spec = Bounded(-20.0, 20.0, shape=(1,))  # noise in units of half the range: std 1.0 is 20 here
    options = {"std": "linear(1.0, 0.1, 100)", "clip": 0.3, "seed": 0}
    clipped = rlte_plugins.make("distribution", "truncated_normal_noise", explore_clip=0.3, **options)
    noise = clipped.build(spec, in_features=2).noise()
    td = TensorDict(action=torch.zeros(10_000, 1), batch_size=[10_000])
    first = noise(td.clone())["action"]
    assert first.abs().max() <= 6.0 + 1e-5 and first.abs().max() > 5.8
    noise.step(100)
    late = noise(td.clone())["action"]
    assert late.std().item() == pytest.approx(2.0, rel=0.05)  # 0.1 is well inside the clip
    # DrQ-v2 explores unclipped (clip=0.3 is its loss's)
    unclipped = rlte_plugins.make("distribution", "truncated_normal_noise", **options).build(spec, in_features=2)
    wide = unclipped.noise()(td.clone())["action"]
    assert (wide.abs() > 6.0).float().mean() > 0.7  # N(0, 20): 76% beyond 6


@pytest.mark.parametrize("name", ["normal_noise", "truncated_normal_noise", "ornstein_uhlenbeck_noise"])
def test_noise_schedule_is_exact_in_frames_and_seed_fixes_the_noise(name):
    spec = Bounded(-10.0, 10.0, shape=(2,))

    def noise(seed):
        head = rlte_plugins.make("distribution", name, std="linear(1.0, 0.1, 500000)", seed=seed)
        return head.build(spec, in_features=2).noise()

    module = noise(0)
    for _ in range(250):  # collector batches of 1000 frames (TorchRL's float32 annealing drifts to 0.553 here)
        module.step(1000)
    assert module.std == pytest.approx(0.55, abs=1e-12)
    module.step(250_000)
    assert module.std == pytest.approx(0.1, abs=1e-12)
    td = TensorDict(action=torch.zeros(64, 2), batch_size=[64])
    first = noise(0)(td.clone())["action"]
    torch.manual_seed(123)  # the seeded stream does not depend on the global RNG
    assert torch.equal(noise(0)(td.clone())["action"], first)
    assert not torch.equal(noise(1)(td.clone())["action"], first)


def test_ornstein_uhlenbeck_noise_is_correlated_and_restarts_per_env():
    spec = Bounded(-1.0, 1.0, shape=(2,))
    head = rlte_plugins.make("distribution", "ornstein_uhlenbeck_noise", std=1.0, seed=0).build(spec, in_features=2)
    noise = head.noise()
    n = 512
    running = torch.zeros(n, 1, dtype=torch.bool)
    path = torch.stack(  # a fresh tensordict each call: the process state lives in the module
        [noise(TensorDict(action=torch.zeros(n, 2), is_init=running, batch_size=[n]))["action"] for _ in range(200)]
    )
    lag1 = torch.corrcoef(torch.stack([path[:-1].flatten(), path[1:].flatten()]))[0, 1]
    assert lag1 > 0.95 and path[-1].std() > 0.15
    restart = running.clone()
    restart[0] = True
    nxt = noise(TensorDict(action=torch.zeros(n, 2), is_init=restart, batch_size=[n]))["action"]
    step = 0.2 * 1e-2**0.5  # sigma * sqrt(dt): one step from 0
    assert nxt[0].abs().max() < 5 * step
    assert (nxt[1:] - path[-1, 1:]).abs().max() < 6 * step  # the other envs run on
    assert path[-1, 1:].abs().max() > 5 * step


def test_torchrl_noise_modules_still_differ_from_ours():
    """Tripwire for the reasons :class:`NoiseModule` gives for not using TorchRL's twins (torchrl 0.14.1): when
    this fails, check whether ``AdditiveGaussianModule`` / ``OrnsteinUhlenbeckProcessModule`` became drop-ins."""
    import inspect

    from torchrl.modules import AdditiveGaussianModule, OrnsteinUhlenbeckProcessModule

    spec = Bounded(-1.0, 1.0, shape=(2,))
    with pytest.raises(RuntimeError):
        AdditiveGaussianModule(spec, sigma_init=0.1, sigma_end=1.0)  # our schedules may rise
    with pytest.raises(ValueError):
        OrnsteinUhlenbeckProcessModule(spec, eps_init=0.1, eps_end=1.0)
    for cls in (AdditiveGaussianModule, OrnsteinUhlenbeckProcessModule):
        assert not {"seed", "generator"} & set(inspect.signature(cls).parameters)
    out = OrnsteinUhlenbeckProcessModule(spec)(
        TensorDict(action=torch.zeros(3, 2), is_init=torch.zeros(3, 1, dtype=torch.bool), batch_size=[3])
    )
    assert "_ou_prev_noise" in out.keys()  # its process state travels in the tensordict, not in the module


def test_deterministic_actor_and_noise_feed_torchrl_td3_loss():
    from tensordict.nn import TensorDictModule
    from torch import nn
    from torchrl.modules import ValueOperator
    from torchrl.objectives import TD3Loss

    spec = Bounded(-1.0, 1.0, shape=(2,))
    head = rlte_plugins.make("distribution", "truncated_normal_noise").build(spec, in_features=3)
    body = TensorDictModule(nn.Linear(5, 3), ["observation"], ["features"])
    actor = head.actor(body, spec)

    class Q(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = nn.Linear(7, 1)

        def forward(self, obs, action):
            return self.net(torch.cat([obs, action], -1))

    qvalue = ValueOperator(Q(), in_keys=["observation", "action"], out_keys=["state_action_value"])
    loss = TD3Loss(actor, qvalue, action_spec=spec)
    n = 8
    flag = torch.zeros(n, 1, dtype=torch.bool)
    nxt = TensorDict(
        observation=torch.randn(n, 5), reward=torch.randn(n, 1), done=flag, terminated=flag, batch_size=[n]
    )
    data = TensorDict(observation=torch.randn(n, 5), action=spec.rand((n,)), next=nxt, batch_size=[n])
    out = loss(data)
    (out["loss_actor"] + out["loss_qvalue"]).backward()
    assert all(p.grad is not None for p in head.parameters())


class _ZeroQ(torch.nn.Module):
    """Q = 0 with a parameter (SACLoss needs one): the actor loss is then the entropy term alone."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))

    def forward(self, observation: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return (observation.sum(-1, keepdim=True) + action.sum(-1, keepdim=True)) * self.weight


@pytest.mark.parametrize("loc,log_std", [(0.0, 2.0), (10.0, 0.0), (12.0, -1.0)], ids=["wide", "saturated", "deep"])
def test_squashed_normal_in_sac_loss_scores_its_draws_exactly(loc, log_std):
    """SAC's actor loss scores reparameterised draws: with Q = 0 it is ``alpha * E[log pi]``, whose value and
    gradient must be those of the exact pre-tanh draws (TorchRL's ``TanhNormal``), saturated ones included: scored
    through ``atanh`` of the rounded action, the gradient on ``loc`` had the wrong sign (-27 instead of +2)."""
    from tensordict.nn import TensorDictModule
    from torchrl.modules import ProbabilisticActor, TanhNormal, ValueOperator
    from torchrl.objectives import SACLoss

    class LocScale(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.loc = torch.nn.Parameter(torch.full((1,), loc))
            self.log_std = torch.nn.Parameter(torch.full((1,), log_std))

        def forward(self, observation: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            shape = (*observation.shape[:-1], 1)
            return self.loc.expand(shape), self.log_std.exp().expand(shape)

    spec = Bounded(-1.0, 1.0, shape=(1,))
    n = 4096
    batch = TensorDict(
        observation=torch.zeros(n, 3),
        action=torch.zeros(n, 1),
        next=TensorDict(
            observation=torch.zeros(n, 3),
            reward=torch.zeros(n, 1),
            done=torch.zeros(n, 1, dtype=torch.bool),
            terminated=torch.zeros(n, 1, dtype=torch.bool),
            batch_size=[n],
        ),  # fmt: skip
        batch_size=[n],
    )
    results = []
    for cls in (SquashedNormal, TanhNormal):
        net = LocScale()
        actor = ProbabilisticActor(TensorDictModule(net, ["observation"], ["loc", "scale"]), in_keys=["loc", "scale"],
                                   distribution_class=cls, distribution_kwargs={"low": -1.0, "high": 1.0},
                                   return_log_prob=True, spec=spec)  # fmt: skip
        zero_q = ValueOperator(_ZeroQ(), in_keys=["observation", "action"])
        loss = SACLoss(actor, zero_q, num_qvalue_nets=2, action_spec=spec, alpha_init=1.0, fixed_alpha=True)
        torch.manual_seed(0)  # the same draws for both
        actor_loss, _ = loss.actor_loss(batch.clone())
        actor_loss.backward()
        results.append(torch.stack([actor_loss.detach(), net.loc.grad[0], net.log_std.grad[0]]))
    torch.testing.assert_close(results[0], results[1], rtol=1e-4, atol=1e-4)
    if loc > 5:  # saturated: minimising E[log pi] pulls the mean back from the bound
        assert results[0][1] > 1.9


def test_squashed_normal_scores_draws_without_gradient_exactly_by_default():
    """Off-policy targets draw next actions without gradient (SAC, CrossQ, CQL): the default scores them at the
    exact pre-tanh value, as TorchRL's TanhNormal does (from the rounded action, loc 12 gave -34.8 for 22.2)."""
    from torchrl.modules import TanhNormal

    loc, scale = torch.full((2048, 1), 12.0), torch.full((2048, 1), math.exp(-1.0))
    with torch.no_grad():
        torch.manual_seed(0)
        ours = SquashedNormal(loc, scale)
        score = ours.log_prob(ours.sample())
        torch.manual_seed(0)
        # TanhNormal scores its own draws exactly only through rsample_and_log_prob (its plain log_prob of a
        # saturated draw gives -70 here): what TorchRL's actors and losses call
        _, expected = TanhNormal(loc, scale, low=-1.0, high=1.0, event_dims=1).rsample_and_log_prob()
    torch.testing.assert_close(score, expected, rtol=1e-5, atol=1e-4)
    assert score.mean() > 20


@pytest.mark.parametrize("collection", ["direct", "torchrl"])
def test_on_policy_agents_store_the_score_their_loss_recomputes(collection):
    """PPO switches squashed_normal to scoring draws from their actions, on both collection strategies: a wide,
    saturating policy's collected log-probs are exactly what the loss's re-score of the stored actions gives."""
    wide = {"name": "squashed_normal", "log_std_min": 2.0, "log_std_max": 3.0}
    agent = rlte_plugins.make("agent", "ppo", env="torch_pendulum", num_envs=16, num_steps=16, seed=0,
                              collection=collection)  # fmt: skip
    agent.set(distribution=wide, encoder={"name": "mlp", "num_cells": [8]})
    data = agent.collect().reshape(-1)
    high = agent.env.action_spec.space.high.reshape(-1)[0]
    assert (data["action"].abs() >= high * (1 - 1e-6)).float().mean() > 0.3  # many actions on the bounds
    with torch.no_grad():
        rescored = agent.policy.actor.get_dist(data.clone()).log_prob(data["action"])
    # equal up to the network's float rounding at another batch size (with exact draw scores: off by up to 30)
    torch.testing.assert_close(rescored, data["action_log_prob"], rtol=0.0, atol=1e-4)
    agent.close()
