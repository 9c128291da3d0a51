"""A one-token answer from the prefill forward alone: what greedy ``generate()`` with one new
token returns, without ``generate()``'s per-call set-up.

Greedy ``generate(max_new_tokens=1)`` runs one forward (the prefill) and takes the argmax of
the last position's logits after its logits processors. Around that forward it validates its
kwargs against ``forward``'s signature, copies the generation config, builds processors,
stopping criteria and a KV cache: on the digits model at batch 1, one CPU thread, 2.2 ms of
the cheapest config's 6.6 ms per call (``bench/bench_answer_path.py``, medians of 200
interleaved calls), i.e. a fixed cost that no knob can remove and that no serving engine
pays per request. A serving path for short answers (a word, a label, a digit) needs none of
it.

:class:`PrefillAnswer` is that path: one forward of the (hooked) model with ``logits_to_keep=1``
and no cache, the generation config's token rules that can change a greedy first token
applied (``suppress_tokens``, ``begin_suppress_tokens``, and EOS held back by
``min_new_tokens`` / ``min_length``), the argmax appended to ``input_ids`` as ``generate()``
does. :meth:`PrefillAnswer.create` returns ``None`` (use ``generate()``) for more than one new
token or for a generation config with any other setting that changes the greedy choice
(beams, sampling, repetition penalties, bad words, forced tokens, ...), so the two paths give
the same tokens wherever this one is used (``tests/test_prefill_answer.py`` checks every
family). Use ``answer_path="generate"`` at the callers to time ``generate()`` itself.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

ANSWER_PATHS = ("auto", "generate")
"""``auto``: :class:`PrefillAnswer` where it gives ``generate()``'s tokens, else
``generate()``; ``generate``: always ``generate()``."""

# Generation-config fields that can change a greedy first token and that this path does not
# apply, with the values that leave it unchanged (unset, or the old explicit defaults): any
# other value sends the call to generate().
_NEUTRAL: dict[str, tuple[Any, ...]] = {
    "do_sample": (None, False),
    "num_beams": (None, 1),
    "num_beam_groups": (None, 1),
    "penalty_alpha": (None,),
    "diversity_penalty": (None, 0.0),
    "repetition_penalty": (None, 1.0),
    "encoder_repetition_penalty": (None, 1.0),
    "no_repeat_ngram_size": (None, 0),
    "encoder_no_repeat_ngram_size": (None, 0),
    "bad_words_ids": (None,),
    "force_words_ids": (None,),
    "sequence_bias": (None,),
    "forced_bos_token_id": (None,),
    "forced_eos_token_id": (None,),
    "exponential_decay_length_penalty": (None,),
    "guidance_scale": (None, 1.0),
    "watermarking_config": (None,),
    "constraints": (None,),
    "prompt_lookup_num_tokens": (None,),
    "assistant_early_exit": (None,),
    "dola_layers": (None,),
    "token_healing": (None, False),
}


def _ids(value: Any) -> list[int]:
    if value is None:
        return []
    if isinstance(value, int):
        return [value]
    return [int(v) for v in value]


class PrefillAnswer:
    """Greedy one-token answers from one forward; build with :meth:`create`."""

    def __init__(
        self,
        model: nn.Module,
        banned: torch.Tensor | None,
        banned_with_eos: torch.Tensor | None,
        min_length: int,
        logits_to_keep: bool,
    ) -> None:
        self.model = model
        # bool (vocab,), True = not chosen as the first new token; the second one also holds
        # EOS back, for prompts shorter than min_length
        self._banned, self._banned_with_eos = banned, banned_with_eos
        self._min_length = min_length
        self._forward_kw: dict[str, Any] = {"use_cache": False}
        if logits_to_keep:
            self._forward_kw["logits_to_keep"] = 1

    @classmethod
    def create(cls, model: nn.Module, gen_kwargs: Mapping[str, Any]) -> PrefillAnswer | None:
        """The path for ``model.generate(**inputs, **gen_kwargs)``, or ``None`` where it would
        not give ``generate()``'s tokens (more than one new token, a setting it does not apply)
        and ``generate()`` must run."""
        from transformers import GenerationConfig

        base = getattr(model, "generation_config", None)
        gc = copy.deepcopy(base) if base is not None else GenerationConfig()
        if gc.update(**dict(gen_kwargs)):
            return None  # kwargs generate() hands to forward: leave them to generate()
        if gc.max_new_tokens != 1:
            return None
        if any(getattr(gc, f, None) not in ok for f, ok in _NEUTRAL.items()):
            return None
        vocab = _vocab_size(model)
        first = _ids(gc.suppress_tokens) + _ids(gc.begin_suppress_tokens)
        eos = _ids(gc.eos_token_id)
        min_new, min_length = int(gc.min_new_tokens or 0), int(gc.min_length or 0)
        if vocab is None and (first or (eos and (min_new or min_length))):
            return None
        device = next(model.parameters()).device
        banned = _mask(first + (eos if min_new >= 1 else []), vocab, device)
        with_eos = _mask(first + eos, vocab, device)
        params = inspect.signature(model.forward).parameters
        return cls(model, banned, with_eos, min_length, "logits_to_keep" in params)

    def __call__(self, inputs: Mapping[str, Any], **call_kwargs: Any) -> torch.Tensor:
        """``input_ids`` with the answer token appended (``generate()``'s output).
        ``call_kwargs``: what the hooked forward also takes (``budget_ms``, ``task_type``)."""
        ids = inputs["input_ids"]
        out = self.model(**inputs, **self._forward_kw, **call_kwargs)
        logits = out.logits[:, -1, :].float()
        banned = self._banned_with_eos if self._min_length > ids.shape[1] else self._banned
        if banned is not None:
            logits = logits.masked_fill(_fit(banned, logits.shape[-1]), float("-inf"))
        return torch.cat([ids, logits.argmax(-1, keepdim=True).to(ids.dtype)], dim=1)


def _vocab_size(model: nn.Module) -> int | None:
    out = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    weight = getattr(out, "weight", None)
    return int(weight.shape[0]) if isinstance(weight, torch.Tensor) else None


def _mask(token_ids: list[int], vocab: int | None, device: torch.device) -> torch.Tensor | None:
    if not token_ids or vocab is None:
        return None
    m = torch.zeros(vocab, dtype=torch.bool, device=device)
    m[[t for t in token_ids if 0 <= t < vocab]] = True
    return m


def _fit(mask: torch.Tensor, n: int) -> torch.Tensor:
    """The mask at the logits' width (a head wider than the embedding pads)."""
    if mask.numel() < n:
        return torch.cat([mask, mask.new_zeros(n - mask.numel())])
    return mask[:n]
