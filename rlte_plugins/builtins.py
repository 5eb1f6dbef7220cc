"""The built-in components, registered through the package's own ``rlte_plugins`` entry point.

Factories are lazy ``module:attr`` strings, so ``rlte list`` imports neither torch nor any environment backend.
"""

from __future__ import annotations

from rlte_plugins.hookspecs import Register, hookimpl


@hookimpl
def register_envs(register: Register) -> None:
    register("gymnasium", "rlte_plugins.envs.gymnasium:make_gymnasium", tags=("vector", "pixels", "envpool", "cpu"))
    register("envpool", "rlte_plugins.envs.envpool:EnvPoolEnv", tags=("vector", "pixels", "envpool", "cpu"))
    register("atari", "rlte_plugins.envs.atari:make_atari", tags=("pixels", "discrete", "envpool", "cpu"))
    register("procgen", "rlte_plugins.envs.procgen:make_procgen", tags=("pixels", "discrete", "envpool", "cpu"))
    register("dmc", "rlte_plugins.envs.dmc:make_dmc", tags=("vector", "pixels", "continuous", "cpu"))
    register("minigrid", "rlte_plugins.envs.minigrid:make_minigrid", tags=("vector", "discrete", "envpool", "cpu"))
    register("bullet", "rlte_plugins.envs.bullet:make_bullet", tags=("vector", "continuous", "cpu"))
    register("rl8", "rlte_plugins.envs.rl8:Rl8Env", tags=("device", "adapter"))
    torch_native = "rlte_plugins.envs.torch_native.tasks"
    register("dummy_discrete", f"{torch_native}:DummyDiscrete", tags=("vector", "discrete", "device"))
    register("dummy_continuous", f"{torch_native}:DummyContinuous", tags=("vector", "continuous", "device"))
    register("torch_cartpole", f"{torch_native}:TorchCartPole", tags=("vector", "pixels", "discrete", "device"))
    register("torch_pendulum", f"{torch_native}:TorchPendulum", tags=("vector", "pixels", "continuous", "device"))
    register("torch_mountain_car", f"{torch_native}:TorchMountainCar", tags=("vector", "pixels", "discrete", "device"))
    register("torch_point_mass", f"{torch_native}:TorchPointMass", tags=("vector", "pixels", "continuous", "device"))
    register("torch_deep_sea", f"{torch_native}:TorchDeepSea", tags=("vector", "discrete", "device", "exploration"))


@hookimpl
def register_encoders(register: Register) -> None:
    register("identity", "rlte_plugins.encoders.identity:IdentityEncoder", tags=("vector",))
    register("mlp", "rlte_plugins.encoders.mlp:MLPEncoder", tags=("vector",))
    register("mnih_cnn", "rlte_plugins.encoders.pixels:MnihCNN", tags=("pixels",))
    register("tassa_cnn", "rlte_plugins.encoders.pixels:TassaCNN", tags=("pixels",))
    register("pathak_cnn", "rlte_plugins.encoders.pixels:PathakCNN", tags=("pixels",))
    register("espeholt_resnet", "rlte_plugins.encoders.pixels:EspeholtResNet", tags=("pixels",))
    register("combined", "rlte_plugins.encoders.combined:CombinedEncoder", tags=("pixels", "vector", "dict"))


@hookimpl
def register_distributions(register: Register) -> None:
    register("categorical", "rlte_plugins.distributions.categorical:CategoricalHead", tags=("discrete",))
    register(
        "diagonal_gaussian",
        "rlte_plugins.distributions.diagonal_gaussian:DiagonalGaussianHead",
        tags=("continuous",),
    )
    discrete = "rlte_plugins.distributions.discrete"
    register("masked_categorical", f"{discrete}:MaskedCategoricalHead", tags=("discrete", "mask"))
    register("bernoulli", f"{discrete}:BernoulliHead", tags=("binary",))
    register("multi_categorical", f"{discrete}:MultiCategoricalHead", tags=("multi-discrete",))
    register("squashed_normal", "rlte_plugins.distributions.squashed_normal:SquashedNormalHead", tags=("continuous",))
    noise = "rlte_plugins.distributions.noise"
    register("normal_noise", f"{noise}:NormalNoiseHead", tags=("continuous", "deterministic", "noise"))
    register(
        "ornstein_uhlenbeck_noise", f"{noise}:OrnsteinUhlenbeckNoiseHead", tags=("continuous", "deterministic", "noise")
    )
    register(
        "truncated_normal_noise", f"{noise}:TruncatedNormalNoiseHead", tags=("continuous", "deterministic", "noise")
    )


@hookimpl
def register_augmentations(register: Register) -> None:
    image = "rlte_plugins.augmentations.image"
    for name, cls, tags in (
        ("identity", "Identity", ("any",)),
        ("random_shift", "RandomShift", ("pixels", "drq")),
        ("random_crop", "RandomCrop", ("pixels",)),
        ("random_translate", "RandomTranslate", ("pixels",)),
        ("random_flip", "RandomFlip", ("pixels",)),
        ("random_rotate", "RandomRotate", ("pixels",)),
        ("random_cutout", "RandomCutout", ("pixels",)),
        ("random_cutout_color", "RandomCutoutColor", ("pixels",)),
        ("grayscale", "Grayscale", ("pixels",)),
        ("color_jitter", "ColorJitter", ("pixels",)),
        ("random_convolution", "RandomConvolution", ("pixels",)),
        ("gaussian_noise", "GaussianNoise", ("pixels", "vector")),
        ("random_amplitude_scaling", "RandomAmplitudeScaling", ("pixels", "vector")),
    ):
        register(name, f"{image}:{cls}", tags=tags)


@hookimpl
def register_policies(register: Register) -> None:
    register("actor_critic", "rlte_plugins.policies.actor_critic:ActorCritic", tags=("on-policy",))
    ac = "rlte_plugins.policies.actor_critic"
    register("decoupled_actor_critic", f"{ac}:DecoupledActorCritic", tags=("on-policy", "daac"))
    register("recurrent_actor_critic", f"{ac}:RecurrentActorCritic", tags=("on-policy", "recurrent"))
    vb = "rlte_plugins.policies.value_based"
    register("deterministic_double_critic", f"{vb}:DeterministicDoubleCritic", tags=("off-policy", "continuous"))
    register("stochastic_double_critic", f"{vb}:StochasticDoubleCritic", tags=("off-policy", "sac"))
    register("double_q", f"{vb}:DoubleQNetwork", tags=("off-policy", "discrete", "dqn"))
    register("phasic_actor_critic", "rlte_plugins.policies.phasic_actor_critic:PhasicActorCritic",
             tags=("on-policy", "ppg"))  # fmt: skip
    register("pixel_actor_critic", "rlte_plugins.policies.pixel_actor_critic:PixelActorCritic",
             tags=("off-policy", "pixels", "drq"))  # fmt: skip


@hookimpl
def register_storages(register: Register) -> None:
    register("rollout", "rlte_plugins.storages.rollout:RolloutStorage", tags=("on-policy",))
    register("dict_rollout", "rlte_plugins.storages.rollout:DictRolloutStorage", tags=("on-policy", "dict"))
    replay = "rlte_plugins.storages.replay"
    register("replay", f"{replay}:ReplayStorage", tags=("off-policy",))
    register("dict_replay", f"{replay}:DictReplayStorage", tags=("off-policy", "dict"))
    register("nstep_replay", f"{replay}:NStepReplayStorage", tags=("off-policy", "n-step"))
    register("prioritized_replay", f"{replay}:PrioritizedReplayStorage", tags=("off-policy", "prioritized"))
    register("her_replay", "rlte_plugins.storages.her:HERReplayStorage", tags=("off-policy", "goal"))


@hookimpl
def register_agents(register: Register) -> None:
    register("ppo", "rlte_plugins.agents.ppo:PPO", tags=("on-policy", "discrete", "continuous"))
    register(
        "fast_ppo",
        "rlte_plugins.agents.ppo:fast_ppo",
        summary="PPO with rl8's defaults for envs batched on the training device (a preset of ppo).",
        tags=("on-policy", "preset", "device", "fast"),
    )
    register(
        "ppo_lstm",
        "rlte_plugins.agents.ppo:ppo_lstm",
        summary="PPO with an LSTM policy, truncated BPTT over stored states (a preset of ppo).",
        tags=("on-policy", "preset", "recurrent"),
    )
    register("a2c", "rlte_plugins.agents.a2c:A2C", tags=("on-policy", "discrete", "continuous"))
    register("drac", "rlte_plugins.agents.drac:DrAC", tags=("on-policy", "pixels", "augmentation"))
    register("daac", "rlte_plugins.agents.daac:DAAC", tags=("on-policy", "discrete", "continuous", "generalisation"))
    register("drdaac", "rlte_plugins.agents.daac:DrDAAC", tags=("on-policy", "pixels", "augmentation"))
    register("ppg", "rlte_plugins.agents.ppg:PPG", tags=("on-policy", "discrete", "continuous", "auxiliary"))
    register("impala", "rlte_plugins.agents.impala:IMPALA", tags=("on-policy", "off-policy-correction", "v-trace"))
    register("dqn", "rlte_plugins.agents.dqn:DQN", tags=("off-policy", "discrete"))
    register("ddpg", "rlte_plugins.agents.ddpg:DDPG", tags=("off-policy", "continuous"))
    register("td3", "rlte_plugins.agents.td3:TD3", tags=("off-policy", "continuous"))
    register("sac", "rlte_plugins.agents.sac:SAC", tags=("off-policy", "continuous"))
    register("sac_discrete", "rlte_plugins.agents.sac:DiscreteSAC", tags=("off-policy", "discrete"))
    register("drqv2", "rlte_plugins.agents.drq:DrQV2", tags=("off-policy", "continuous", "pixels"))
    register("drq", "rlte_plugins.agents.drq:DrQ", tags=("off-policy", "continuous", "pixels"))


@hookimpl
def register_losses(register: Register) -> None:
    register("drqv2", "rlte_plugins.objectives.drq:DrQV2Loss", tags=("off-policy", "pixels"))
    register("drq", "rlte_plugins.objectives.drq:DrQLoss", tags=("off-policy", "pixels"))


@hookimpl
def register_rewards(register: Register) -> None:
    register("rnd", "rlte_plugins.rewards.rnd:RND", tags=("lifelong", "pixels", "vector"))
    register("icm", "rlte_plugins.rewards.icm:ICM", tags=("lifelong", "pixels", "vector"))
    register("ride", "rlte_plugins.rewards.ride:RIDE", tags=("episodic", "pixels", "vector"))
    register("disagreement", "rlte_plugins.rewards.disagreement:Disagreement", tags=("lifelong", "pixels", "vector"))
    register("e3b", "rlte_plugins.rewards.e3b:E3B", tags=("episodic", "pixels", "vector"))
    register("pseudo_counts", "rlte_plugins.rewards.pseudo_counts:PseudoCounts", tags=("episodic", "pixels", "vector"))
    register("ngu", "rlte_plugins.rewards.ngu:NGU", tags=("episodic", "lifelong", "pixels", "vector"))
    register("re3", "rlte_plugins.rewards.re3:RE3", tags=("batch", "pixels", "vector"))
    register("rise", "rlte_plugins.rewards.rise:RISE", tags=("batch", "pixels", "vector"))
    register("revd", "rlte_plugins.rewards.revd:RevD", tags=("lifelong", "pixels", "vector"))
    register("mixture", "rlte_plugins.rewards.mixture:Mixture", tags=("episodic", "lifelong", "pixels", "vector"))
