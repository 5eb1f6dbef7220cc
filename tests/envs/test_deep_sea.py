import torch

import rlte_plugins


def _play(env, moves):
    """Total reward of a path of moves (1 right, 0 left) from the top-left cell."""
    td, total = env.reset(), 0.0
    for row, move in enumerate(moves):
        col = int(td["observation"][0].argmax()) % env.size
        right = int(env.right[row, col])
        td["action"] = torch.tensor([right if move else 1 - right])
        td = env.step(td)
        total += float(td["next", "reward"])
        td = td["next"]
    return total, bool(td["terminated"])


def test_only_the_all_right_path_finds_the_treasure_as_in_bsuite():
    env = rlte_plugins.make("env", "torch_deep_sea", size=4, num_envs=1, seed=0)
    total, terminated = _play(env, (1, 1, 1, 1))
    assert abs(total - 0.99) < 1e-6 and terminated
    left_first = _play(env, (0, 1, 1, 1))[0]  # ends in the last column too, but never moves right from it
    assert abs(left_first - (-0.0075)) < 1e-6
    assert _play(env, (0, 0, 0, 0)) == (0.0, True)
