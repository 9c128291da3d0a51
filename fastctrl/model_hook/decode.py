"""Decode state: the decision a prefill made, held through ``generate()``'s decode steps.

The KV cache holds only the kept tokens and only the active blocks' layers, so a decode step
must run the same config, keep the original position numbering (positions continue after the
last prompt position, not after the last kept one) and map a full 2-D attention mask from
``generate()`` onto the kept columns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..space import Config


@dataclass
class DecodeState:
    """The decision held from a prefill through its decode steps."""

    config: Config
    keep_idx: torch.Tensor | None  # [B, L'] kept original columns; None when nothing removed
    orig_len: int
    kept_len: int
    next_pos: torch.Tensor | None  # [B] or [C, B]: next original position per row
    cache_len: int  # cache length the next continuing call must present
    values: dict[str, int] | None = None  # config.values, computed once for every step

    def map_mask(self, am: Any, past: int, n: int) -> Any:
        """A 2-D mask over the original prompt columns (+ generated ones) mapped onto the
        kept columns; any other mask as it is."""
        if (
            self.keep_idx is None
            or not (isinstance(am, torch.Tensor) and am.ndim == 2)
            or am.shape[1] != self.orig_len + (past - self.kept_len) + n
        ):
            return am
        return torch.cat(
            [am[:, : self.orig_len].gather(1, self.keep_idx), am[:, self.orig_len :]], dim=1
        )

    def continue_step(self, kwargs: dict[str, Any], past: int) -> None:
        """Rewrite one decode step's language-model kwargs (mask, positions), in place."""
        if self.keep_idx is None:
            return  # nothing removed: the model's own masks and positions are already right
        n = int(kwargs["inputs_embeds"].shape[1])
        am = kwargs.get("attention_mask")
        # a mask the base model prepared itself was built from the top-level 2-D mask, which
        # the hook already mapped onto the kept columns (HookHandle._outer_pre): as it is
        if isinstance(am, torch.Tensor) and am.ndim == 2:
            full = self.orig_len + (past - self.kept_len) + n
            if am.shape[1] == full:  # generate()'s mask over the original columns: map it
                kwargs["attention_mask"] = self.map_mask(am, past, n)
            elif am.shape[1] != past + n:
                raise ValueError(
                    f"fastctrl.hook: attention_mask has {am.shape[1]} columns; expected {full} "
                    f"(original prompt columns) or {past + n} (cache + new tokens)"
                )
        # positions continue the original numbering (the model would count kept tokens only)
        assert self.next_pos is not None
        step = torch.arange(n, device=self.next_pos.device)
        new = self.next_pos[..., None] + step
        given = kwargs.get("position_ids")
        if (
            given is not None
            and given.ndim == 3
            and new.ndim == 3
            and given.shape[0] != new.shape[0]
        ):
            new = new[1:] if new.shape[0] == 4 else torch.cat([new[:1], new])
        kwargs["position_ids"] = new
        self.next_pos = self.next_pos + n
