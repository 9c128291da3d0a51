"""Tiny MoE text models for the vLLM plugin's tests and bench, and the transformers reference.

Built from config classes (nothing downloaded) with well-separated logits
(``initializer_range=0.2``: at the default 0.02 the logits are near-tied and vLLM and
transformers break ties apart after a token or two). Hidden 128 (head_dim 32: vLLM's CPU
attention has no kernel for head_dim 16), 4 decoder layers, 8 experts, 4 per token.

The reference for a reduced config is the transformers model itself, independently reduced:
every router's ``top_k`` set (its own renormalisation rule kept), the decoder layers truncated
to the depth; greedy decoding by full recomputation (no KV cache), float32.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch

ARCHS = {"olmoe": "OlmoeForCausalLM", "qwen3_moe": "Qwen3MoeForCausalLM"}
HIDDEN = 128
LAYERS = 4
TOP_K = 4


def build(
    kind: str,
    path: str | Path,
    seed: int = 0,
    tokenizer: bool = False,
    hidden: int = HIDDEN,
    layers: int = LAYERS,
) -> Any:
    """Build, save (``save_pretrained``) and return the tiny ``kind`` model (the bench
    builds a wider, deeper one)."""
    import transformers

    from fastctrl.testing.tiny_models.configs import MoeSize
    from fastctrl.testing.tiny_models.text_models import text_model_config

    cfg = text_model_config(kind, MoeSize(hidden=hidden, layers=layers, top_k=TOP_K))
    cfg.initializer_range = 0.2
    torch.manual_seed(seed)
    model = getattr(transformers, ARCHS[kind])(cfg).eval()
    model.save_pretrained(path)
    if tokenizer:
        from fastctrl.testing.tiny_models.pretrained import left_padded_tokenizer, train_tokenizer

        left_padded_tokenizer(train_tokenizer()).save_pretrained(path)
    return model


def reduced(model: Any, top_k: int, depth: int) -> Any:
    """A copy of ``model`` with every router at ``top_k`` and only the first ``depth`` blocks."""
    m = copy.deepcopy(model)
    routers = [mod for mod in m.modules() if type(mod).__name__.endswith("TopKRouter")]
    assert routers, "no routers found"
    for r in routers:
        r.top_k = top_k
    m.model.layers = torch.nn.ModuleList(list(m.model.layers)[:depth])
    m.config.num_hidden_layers = depth
    return m


@torch.no_grad()
def greedy(model: Any, prompt: list[int], max_tokens: int) -> list[int]:
    """Greedy tokens by full recomputation (no cache)."""
    ids = list(prompt)
    out: list[int] = []
    for _ in range(max_tokens):
        logits = model(input_ids=torch.tensor([ids]), use_cache=False).logits[0, -1]
        tok = int(logits.argmax())
        out.append(tok)
        ids.append(tok)
    return out


@torch.no_grad()
def text_feature(model: Any, prompt: list[int]) -> torch.Tensor:
    """The controller's text input as the plugin forms it: the mean prompt embedding."""
    return model.get_input_embeddings()(torch.tensor(prompt)).float().mean(0)


def model_class_name(model: Any) -> str:
    """For ``LLM.apply_model``: the class vLLM built (importable, so it pickles by name)."""
    return type(model).__name__
