"""The hub: benchmark results by name (:mod:`~rlte_plugins.hub.datasets`), a local registry of trained agents
(:mod:`~rlte_plugins.hub.models`) and the artifact stores both travel through, W&B's or a local folder
(:mod:`~rlte_plugins.hub.store`). ``rlte hub`` is its command line."""

from rlte_plugins.hub import datasets, models
from rlte_plugins.hub.store import LocalArtifactStore, WandbArtifactStore, artifact_store, hub_dir

__all__ = ["LocalArtifactStore", "WandbArtifactStore", "artifact_store", "datasets", "hub_dir", "models"]
