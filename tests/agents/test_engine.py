"""The update engine and the agent options it reads."""

from __future__ import annotations

import pytest
import torch

import rlte_plugins
from rlte_plugins.errors import ComponentArgumentError
from rlte_plugins.optim.engine import UpdateEngine

CPU = torch.device("cpu")


def test_the_chunk_function_is_made_once_for_an_agents_loss():
    # a bound method is a new object at every access: compared by identity, CUDA graphs were captured anew (and never
    # past their warm-up) for every minibatch
    agent = rlte_plugins.make("agent", "ppo", env="torch_cartpole", num_envs=4, num_steps=16).build()
    agent.iteration()
    chunk = agent.engine._chunk
    agent.iteration()
    assert chunk is not None and agent.engine._chunk is chunk


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"lr": "linear(1e-3, -1e-3, 64)"}, "lr must be >= 0.0, got -0.001"),
        ({"entropy_coef": -0.1}, "entropy_coef must be >= 0.0"),
        ({"lr": -1}, "lr must be >= 0.0"),
        ({"recurrent": {"sequence_length": True}}, "recurrent.sequence_length must be an int"),
    ],
)
def test_schedules_and_sizes_are_held_to_their_bounds(options, message):
    with pytest.raises(ComponentArgumentError, match=message.replace("(", r"\(").replace(")", r"\)")):
        rlte_plugins.make("agent", "ppo", env="torch_cartpole", **options)


def test_an_annealed_schedule_may_end_at_zero():
    agent = rlte_plugins.make("agent", "ppo", env="torch_cartpole", lr="linear(1e-3, 0, 100)", anneal_lr=False)
    assert agent.build().engine.set_lr(1000) == 0.0


def test_recurrent_needs_a_recurrent_policy():
    agent = rlte_plugins.make("agent", "ppo", env="torch_cartpole", num_envs=4, num_steps=8, recurrent={"cell": "gru"})
    with pytest.raises(ComponentArgumentError, match="recurrent= trains a recurrent policy"):
        agent.set(policy="actor_critic").build()


def test_a_loaded_agent_keeps_its_env_count(tmp_path):
    agent = rlte_plugins.make("agent", "ppo", env="torch_cartpole", num_envs=4, num_steps=8)
    path = agent.save(tmp_path / "a.pt")
    with pytest.raises(ComponentArgumentError, match="trained on 4 envs"):
        rlte_plugins.load_agent(path, num_envs=2)


def test_a_plain_torchrl_env_logs_episode_statistics():
    from torchrl.envs import GymEnv, SerialEnv

    env = SerialEnv(2, lambda: GymEnv("CartPole-v1", categorical_action_encoding=True))
    agent = rlte_plugins.make("agent", "ppo", env=env, num_steps=64, num_minibatches=2)
    stats = agent.train(512, progress=False)
    # CartPole's reward is 1 per step: the summed return equals the counted length
    assert 8 < stats["charts/episodic_return"] < 100
    assert stats["charts/episodic_length"] == stats["charts/episodic_return"]


def test_parameter_groups_given_as_generators_are_all_trained():
    a, b = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    engine = UpdateEngine([{"params": a.parameters()}, {"params": b.parameters(), "lr": 1e-3}], device=CPU)
    assert [len(g["params"]) for g in engine.optimizer.param_groups] == [2, 2] and len(engine.params) == 4


def test_a_checkpoint_of_the_per_tensor_adam_loads_into_the_fused_one_and_steps():
    net = torch.nn.Linear(3, 1)
    old = torch.optim.Adam(net.parameters(), lr=1e-3, eps=1e-5)  # what engines saved before fused Adam
    net(torch.randn(4, 3)).sum().backward()
    old.step()
    engine = UpdateEngine(net.parameters(), device=CPU, max_grad_norm=0.5)
    engine.load_state_dict({"optimizer": old.state_dict(), "scaler": engine.scaler.state_dict()})
    net(torch.randn(4, 3)).sum().backward()
    engine.step()
    assert all(g["fused"] for g in engine.optimizer.param_groups)
    assert {int(s["step"]) for s in engine.optimizer.state.values()} == {2}
    assert not hasattr(engine.optimizer, "found_inf")  # the guard's flag does not outlive its step


def test_rmsprop_steps_as_torchs_rmsprop_with_its_decay_eps_and_momentum():
    torch.manual_seed(0)
    net = torch.nn.Linear(3, 2)
    reference = torch.nn.Linear(3, 2)
    reference.load_state_dict(net.state_dict())
    engine = UpdateEngine(net.parameters(), device=CPU, optimizer="rmsprop", lr=1e-2, eps=0.01, alpha=0.9,
                          momentum=0.5, max_grad_norm=40.0)  # fmt: skip
    torch_rmsprop = torch.optim.RMSprop(reference.parameters(), lr=1e-2, alpha=0.9, eps=0.01, momentum=0.5)
    for _ in range(3):
        x = torch.randn(8, 3)
        net(x).pow(2).sum().backward()
        engine.step()
        reference(x).pow(2).sum().backward()
        torch.nn.utils.clip_grad_norm_(reference.parameters(), 40.0)
        torch_rmsprop.step()
        torch_rmsprop.zero_grad()
    assert not engine.fused
    assert all(torch.equal(a, b) for a, b in zip(net.parameters(), reference.parameters(), strict=True))


def test_an_rmsprop_checkpoint_resumes_and_an_adam_one_is_refused():
    from rlte_plugins.errors import CheckpointError

    net = torch.nn.Linear(3, 1)
    engine = UpdateEngine(net.parameters(), device=CPU, optimizer="rmsprop", eps=0.01)
    net(torch.randn(4, 3)).sum().backward()
    engine.step()
    again = UpdateEngine(net.parameters(), device=CPU, optimizer="rmsprop", eps=0.01)
    again.load_state_dict(engine.state_dict())
    saved = next(iter(engine.optimizer.state.values()))["square_avg"]
    assert torch.equal(next(iter(again.optimizer.state.values()))["square_avg"], saved)
    adam = UpdateEngine(net.parameters(), device=CPU)
    with pytest.raises(CheckpointError, match="optimiser state is 'adam''s, not 'rmsprop''s: load it with optimizer"):
        again.load_state_dict(adam.state_dict())
    old = adam.state_dict()
    del old["kind"]  # written before the choice existed: Adam's
    adam.load_state_dict(old)


def test_an_optimizer_the_engine_lacks_is_one_error():
    with pytest.raises(ComponentArgumentError, match="agent: optimizer must be one of 'adam', 'rmsprop', got 'sgd'"):
        UpdateEngine(torch.nn.Linear(2, 2).parameters(), device=CPU, optimizer="sgd")
