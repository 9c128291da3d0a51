"""Triton kernels of fastctrl, shipped as ``fastctrl.kernels`` (see pyproject.toml).

Submodules import triton; this package does not, so ``import fastctrl`` works without it.

- ``fused_controller``: the whole controller + per-head argmax in one launch.
"""
