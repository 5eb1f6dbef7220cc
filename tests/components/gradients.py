"""Gradient checks shared by the component tests: which parameters a backward pass reached."""

from __future__ import annotations

import torch


def assert_trained(named_params, what):
    """Each parameter got a finite, non-zero gradient."""
    named_params = list(named_params)
    assert named_params, f"{what}: no parameters to check"
    for name, p in named_params:
        assert p.grad is not None, f"{what}: {name} got no gradient"
        assert torch.isfinite(p.grad).all(), f"{what}: {name} has a non-finite gradient"
        assert p.grad.abs().sum() > 0, f"{what}: {name} has an all-zero gradient"


def assert_untouched(named_params, what):
    """No parameter got a gradient (None, or exactly zero)."""
    named_params = list(named_params)
    assert named_params, f"{what}: no parameters to check"
    for name, p in named_params:
        assert p.grad is None or not p.grad.any(), f"{what}: {name} got a gradient"
