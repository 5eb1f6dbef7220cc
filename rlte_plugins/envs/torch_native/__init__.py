"""Batched environments written in torch: they live on the training device, with no Python loop over envs."""
