"""The controller every training method trains and every engine serves.

- :mod:`.controller`: :class:`Controller` / :class:`ControllerConfig` (pooled image + text
  features + encoded budget -> one head per knob), save / load without pickle.
- :mod:`.export`: the controller as plain fp32 arrays with the input standardisation folded in:
  the spec every decision engine (torch, int8 C++, Triton) computes.
- :mod:`.recursive`: the recursive refinement core (``arch="recursive"``; also
  :mod:`fastctrl.recursive_control`'s TinyRecursiveControl).
"""

from __future__ import annotations

from .controller import Controller, ControllerConfig, encode_budget

__all__ = ["Controller", "ControllerConfig", "encode_budget"]
