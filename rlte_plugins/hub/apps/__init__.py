"""One-line training with published hyperparameters, through the code path of ``rlte train``.

Each app takes ``--env-id`` (the game or task), ``rlte train``'s flags (``--seed``, ``--total-frames``,
``--output``, ``--device``, ``--logger``, ``--threads``, ``--no-progress``) and ``--set key=value``; ``--print-config``
prints the resolved config as YAML (``rlte train CONFIG.yaml`` runs it again), and a run can be continued with
``rlte train --resume RUN_DIR``:

- ``python -m rlte_plugins.hub.apps.ppo_procgen --env-id bigfish``: PPO on Procgen, Cobbe et al. (2020).
- ``python -m rlte_plugins.hub.apps.ppo_atari --env-id Breakout``: PPO on Atari, CleanRL's ``ppo_atari.py``.
- ``python -m rlte_plugins.hub.apps.drqv2_dmc --env-id cartpole_swingup``: DrQ-v2 from pixels, Yarats et al.
  (2022); on ``cartpole_swingup`` the packaged ``rlte train drqv2_dmc`` run.
- ``python -m rlte_plugins.hub.apps.sac_dmc_state --env-id cheetah_run``: SAC from states, Haarnoja et al. (2018).

Each module's docstring lists its hyperparameters and their source; :mod:`rlte_plugins.hub.apps.common` holds
what they share.
"""

#: the apps, by module name
APPS = ("ppo_procgen", "ppo_atari", "drqv2_dmc", "sac_dmc_state")
