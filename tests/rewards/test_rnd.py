import torch
from tensordict import TensorDict

import rlte_plugins


def _states(obs):
    return TensorDict({"next": {"observation": obs, "done": torch.zeros(*obs.shape[:-1], 1, dtype=torch.bool)}},
                      batch_size=obs.shape[:-1])  # fmt: skip


def test_rnd_bonus_falls_on_states_seen_many_times_and_stays_high_on_new_ones():
    env = rlte_plugins.make("env", "torch_cartpole", num_envs=4)
    rnd = rlte_plugins.make("reward", "rnd", obs_norm=False, reward_norm="none", update_proportion=1.0, lr=1e-3)
    rnd.build(env.observation_spec, env.action_spec)
    gen = torch.Generator().manual_seed(0)
    seen = _states(torch.randn(4, 1, 4, generator=gen).expand(4, 32, 4))  # four states, visited again and again
    new = _states(3.0 * torch.randn(8, 16, 4, generator=gen))
    before_seen, before_new = rnd.compute(seen).mean(), rnd.compute(new).mean()
    for _ in range(300):
        rnd.update(seen)
    after_seen, after_new = rnd.compute(seen).mean(), rnd.compute(new).mean()
    assert after_seen < 0.05 * before_seen  # distilled where it trained
    assert after_new > 0.3 * before_new and after_new > 10 * after_seen  # still surprised elsewhere


def test_rnd_reads_pixels_through_the_icm_encoder():
    env = rlte_plugins.make("env", "torch_cartpole", num_envs=2, from_pixels=True, image_size=36, frame_stack=2)
    rnd = rlte_plugins.make("reward", "rnd").build(env.observation_spec, env.action_spec)
    assert rnd.obs_key == ("next", "pixels") and rnd.pixels
    batch = env.rollout(4, break_when_any_done=False)
    assert rnd(batch)["intrinsic_reward"].shape == (2, 4)
    assert rnd.update(batch)["losses/rnd_loss"] > 0
