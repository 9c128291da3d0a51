"""Greedy answers of several tokens with a KV cache: ``generate()``'s tokens without its
per-call set-up.

:class:`~.prefill_answer.PrefillAnswer` covers one-token answers. Answers of a few tokens (a
list of digits, a short phrase) pay ``generate()``'s per-call work once per request too:
validating kwargs, copying the generation config, building logits processors and stopping
criteria (about 2 ms at batch 1 on a 2-core CPU). :class:`GreedyDecode` runs the same loop
``generate()``'s greedy search runs, through the model's own
``prepare_inputs_for_generation`` / ``_update_model_kwargs_for_generation`` (so positions,
masks, caches and multimodal inputs are the family's), with the token rules that change a
greedy choice (``suppress_tokens``, ``begin_suppress_tokens``, EOS held back by
``min_new_tokens`` / ``min_length``) and stops when every row has emitted EOS or at
``max_new_tokens``; finished rows are padded with ``pad_token_id`` as ``generate()`` pads
them. :meth:`GreedyDecode.create` returns ``None`` (use ``generate()``) for any other setting
that changes the greedy choice, and where the model lacks those generation methods.
``tests/test_greedy_decode.py`` checks the tokens against ``generate()`` on every family.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from .prefill_answer import _NEUTRAL, PrefillAnswer, _fit, _ids, _mask, _vocab_size


def lean_answer_path(
    model: nn.Module, gen_kwargs: Mapping[str, Any]
) -> PrefillAnswer | GreedyDecode | None:
    """The answer path without ``generate()``'s per-call set-up that gives its tokens for
    ``gen_kwargs``: the prefill forward for one new token, the cached greedy loop for more;
    ``None`` where only ``generate()`` does."""
    return PrefillAnswer.create(model, gen_kwargs) or GreedyDecode.create(model, gen_kwargs)


def answered_by(path: Any) -> str:
    """The sidecar's name of an answer path (``None``: ``generate()``)."""
    return {PrefillAnswer: "prefill_forward", GreedyDecode: "greedy_decode"}.get(
        type(path), "generate"
    )


class GreedyDecode:
    """Greedy multi-token answers with a KV cache; build with :meth:`create`."""

    def __init__(
        self,
        model: nn.Module,
        max_new_tokens: int,
        banned: torch.Tensor | None,
        banned_first: torch.Tensor | None,
        eos: torch.Tensor | None,
        eos_mask: torch.Tensor | None,
        pad_token_id: int,
        min_new: int,
        min_length: int,
        logits_to_keep: bool,
        position_ids: bool,
    ) -> None:
        self.model = model
        self.max_new_tokens = max_new_tokens
        self._banned, self._banned_first = banned, banned_first  # bool (vocab,) or None
        self._eos, self._eos_mask = eos, eos_mask
        self._pad = pad_token_id
        self._min_new, self._min_length = min_new, min_length
        self._logits_to_keep = logits_to_keep
        self._position_ids = position_ids

    @classmethod
    def create(cls, model: nn.Module, gen_kwargs: Mapping[str, Any]) -> GreedyDecode | None:
        """The path for ``model.generate(**inputs, **gen_kwargs)`` with ``max_new_tokens >=
        2``, or ``None`` where it would not give ``generate()``'s tokens."""
        from transformers import GenerationConfig

        needed = (
            "prepare_inputs_for_generation",
            "_update_model_kwargs_for_generation",
            "_prepare_position_ids_for_generation",
        )
        if not all(hasattr(model, m) for m in needed):
            return None
        base = getattr(model, "generation_config", None)
        gc = copy.deepcopy(base) if base is not None else GenerationConfig()
        if gc.update(**dict(gen_kwargs)):
            return None  # kwargs generate() hands to forward: leave them to generate()
        if gc.max_new_tokens is None or gc.max_new_tokens < 2 or gc.use_cache is False:
            return None
        if any(getattr(gc, f, None) not in ok for f, ok in _NEUTRAL.items()):
            return None
        if getattr(gc, "stop_strings", None) or getattr(gc, "max_time", None):
            return None
        vocab = _vocab_size(model)
        if vocab is None:
            return None
        device = next(model.parameters()).device
        eos = _ids(gc.eos_token_id)
        pad = gc.pad_token_id if gc.pad_token_id is not None else (eos[0] if eos else None)
        if eos and pad is None:
            return None
        params = inspect.signature(model.forward).parameters
        return cls(
            model,
            int(gc.max_new_tokens),
            _mask(_ids(gc.suppress_tokens), vocab, device),
            _mask(_ids(gc.begin_suppress_tokens), vocab, device),
            torch.tensor(eos, device=device) if eos else None,
            _mask(eos, vocab, device),
            int(pad if pad is not None else 0),
            int(gc.min_new_tokens or 0),
            int(gc.min_length or 0),
            "logits_to_keep" in params,
            "position_ids" in params,
        )

    def _choose(self, logits: torch.Tensor, step: int, length: int) -> torch.Tensor:
        for mask, on in (
            (self._banned, True),
            (self._banned_first, step == 0),
            (self._eos_mask, step < self._min_new or length < self._min_length),
        ):
            if on and mask is not None:
                logits = logits.masked_fill(_fit(mask, logits.shape[-1]), float("-inf"))
        return logits.argmax(-1)

    def __call__(self, inputs: Mapping[str, Any], **call_kwargs: Any) -> torch.Tensor:
        """``input_ids`` with the answer appended (``generate()``'s output). ``call_kwargs``:
        what the hooked forward also takes (``budget_ms``, ``task_type``), given to the
        prefill, whose decision the decode steps keep."""
        model = self.model
        ids = inputs["input_ids"]
        kw: dict[str, Any] = {k: v for k, v in inputs.items() if k != "input_ids"}
        if kw.get("attention_mask") is None:
            kw["attention_mask"] = torch.ones_like(ids)
        if self._position_ids and kw.get("position_ids") is None:
            kw["position_ids"] = model._prepare_position_ids_for_generation(ids, kw)
        kw["use_cache"] = True
        if self._logits_to_keep:
            kw["logits_to_keep"] = 1
        unfinished = torch.ones(ids.shape[0], dtype=torch.bool, device=ids.device)
        for step in range(self.max_new_tokens):
            step_inputs = model.prepare_inputs_for_generation(
                ids,
                next_sequence_length=None if step == 0 else 1,
                is_first_iteration=step == 0,
                **kw,
            )
            out = model(**step_inputs, return_dict=True, **(call_kwargs if step == 0 else {}))
            kw = model._update_model_kwargs_for_generation(out, kw, is_encoder_decoder=False)
            nxt = self._choose(out.logits[:, -1].float(), step, int(ids.shape[1]))
            if self._eos is not None:
                nxt = torch.where(unfinished, nxt, torch.full_like(nxt, self._pad))
            ids = torch.cat([ids, nxt[:, None].to(ids.dtype)], dim=1)
            if self._eos is not None:
                unfinished &= ~torch.isin(nxt, self._eos)
                if not bool(unfinished.any()):
                    break
        return ids
