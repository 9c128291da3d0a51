"""How a request is answered: greedy ``generate()``, or a lean path that gives its tokens
without ``generate()``'s per-call set-up.

- :func:`lean_answer_path` picks :class:`PrefillAnswer` (one new token: the prefill forward
  alone) or :class:`GreedyDecode` (several tokens: the cached greedy loop), or ``None`` where
  only ``generate()`` gives the same tokens;
- :func:`answered_by` names the path for the records (``prefill_forward`` /
  ``greedy_decode`` / ``generate``);
- :func:`make_decoder`: token ids -> answer text through the processor's tokenizer.

**One-token answers.** Greedy ``generate(max_new_tokens=1)`` runs one forward (the prefill) and takes the argmax of
the last position's logits after its logits processors. Around that forward it validates its
kwargs against ``forward``'s signature, copies the generation config, builds processors,
stopping criteria and a KV cache: a fixed cost per call that no knob can remove and that no
serving engine pays per request (measured on the digits model by ``bench/bench_answer_path.py``;
its committed result is rendered in the docs, ``docs/benchmarks/digits.md``). A serving path for short answers (a word, a label, a digit) needs none of
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

**Answers of several tokens.** Answers of a few tokens (a list of digits, a short phrase) pay ``generate()``'s per-call work once per request too:
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
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import torch
from torch import nn

ANSWER_PATHS = ("auto", "generate")
"""``auto``: :class:`PrefillAnswer` (one token) or :class:`GreedyDecode` (more) where it gives
``generate()``'s tokens, else ``generate()``; ``generate``: always ``generate()``."""
AnswerPath = Literal["auto", "generate"]
#: the help of ``--answer_path``, the same wherever a model answers (profile, evaluate)
ANSWER_PATH_HELP = (
    "auto: generate()'s greedy tokens without its per-call set-up: the prefill forward alone "
    "for a one-token answer (--max_new_tokens 1), the cached greedy loop (GreedyDecode) for "
    "longer ones, generate() where neither gives the same tokens (sampling, beams, ...); "
    "generate: always generate()."
)

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


def token_ids(value: Any) -> list[int]:
    """A generation config's token id field (None, an int or a list) as a list."""
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
        first = token_ids(gc.suppress_tokens) + token_ids(gc.begin_suppress_tokens)
        eos = token_ids(gc.eos_token_id)
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
        eos = token_ids(gc.eos_token_id)
        pad = gc.pad_token_id if gc.pad_token_id is not None else (eos[0] if eos else None)
        if eos and pad is None:
            return None
        params = inspect.signature(model.forward).parameters
        return cls(
            model,
            int(gc.max_new_tokens),
            _mask(token_ids(gc.suppress_tokens), vocab, device),
            _mask(token_ids(gc.begin_suppress_tokens), vocab, device),
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


def make_decoder(processor: Any) -> Callable[[Sequence[int]], str]:
    """Token ids -> text through the processor's ``decode`` (or ``batch_decode``), special
    tokens skipped."""
    for name in ("decode", "batch_decode"):
        fn = getattr(processor, name, None)
        if callable(fn):
            if name == "decode":
                return lambda ids: (
                    fn(list(ids), skip_special_tokens=True) if _accepts_skip(fn) else fn(list(ids))
                )
            return lambda ids: fn([list(ids)], skip_special_tokens=True)[0]
    raise TypeError("processor must have decode() or batch_decode() to score generations")


def _accepts_skip(fn: Callable[..., Any]) -> bool:
    try:
        return "skip_special_tokens" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return True


def check_answer_path(answer_path: str) -> None:
    """Refuse an ``answer_path`` other than :data:`ANSWER_PATHS`."""
    if answer_path not in ANSWER_PATHS:
        raise ValueError(f"answer_path must be one of {list(ANSWER_PATHS)}, got {answer_path!r}")
