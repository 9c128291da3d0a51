"""Tiny random-weight VLMs of the supported families, and a toy processor for them.

Nothing is downloaded: models are built from their transformers config classes with small sizes
and seeded random weights. They exist for tests, benchmarks and the profiler demo; their
outputs mean nothing, but their compute has the real structure (vision tower, projector,
MoE routers and experts, decoder blocks, KV cache).

The toy tokenizer maps printable ASCII to its byte value (ids 32..126) and reserves
0 pad, 1 bos, 2 eos, 3 image, 4 video, 5 vision start, 6 vision end.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

PAD, BOS, EOS, IMAGE, VIDEO, VSTART, VEND = range(7)
VOCAB = 128
FAMILIES = ("llava-olmoe", "qwen3-vl-moe")


def tiny_llava_olmoe(seed: int = 0, *, hidden: int = 64, layers: int = 4, experts: int = 8,
                     top_k: int = 4, image_size: int = 32, patch: int = 4) -> nn.Module:
    """LLaVA (CLIP vision tower) + OLMoE text model; ``(image_size/patch)**2`` vision tokens."""
    from transformers import (
        CLIPVisionConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        OlmoeConfig,
    )

    vc = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                          num_attention_heads=2, image_size=image_size, patch_size=patch,
                          projection_dim=32)
    tc = OlmoeConfig(vocab_size=VOCAB, hidden_size=hidden, intermediate_size=hidden,
                     num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=4,
                     num_experts=experts, num_experts_per_tok=top_k, max_position_embeddings=1024,
                     pad_token_id=PAD, bos_token_id=BOS, eos_token_id=EOS)
    cfg = LlavaConfig(vision_config=vc, text_config=tc, image_token_index=IMAGE,
                      image_seq_length=(image_size // patch) ** 2)
    torch.manual_seed(seed)
    return LlavaForConditionalGeneration(cfg).eval()


def tiny_qwen3_vl_moe(seed: int = 0, *, hidden: int = 64, layers: int = 4, experts: int = 8,
                      top_k: int = 4, deepstack: Sequence[int] = (0, 1)) -> nn.Module:
    """Qwen3-VL-MoE; a 32x32 image is an 8x8 patch grid merged 2x2 into 16 vision tokens."""
    from transformers import Qwen3VLMoeConfig, Qwen3VLMoeForConditionalGeneration

    head_dim = 16
    cfg = Qwen3VLMoeConfig(
        text_config=dict(
            vocab_size=VOCAB, hidden_size=hidden, intermediate_size=2 * hidden,
            moe_intermediate_size=hidden // 2, num_hidden_layers=layers, num_attention_heads=4,
            num_key_value_heads=2, head_dim=head_dim, num_experts=experts,
            num_experts_per_tok=top_k, max_position_embeddings=1024, pad_token_id=PAD,
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                             "mrope_section": [2, 3, 3], "mrope_interleaved": True},
        ),
        vision_config=dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2,
                           patch_size=4, spatial_merge_size=2, temporal_patch_size=2,
                           out_hidden_size=hidden, num_position_embeddings=64,
                           deepstack_visual_indexes=list(deepstack)),
        image_token_id=IMAGE, video_token_id=VIDEO, vision_start_token_id=VSTART,
        vision_end_token_id=VEND,
    )
    torch.manual_seed(seed)
    return Qwen3VLMoeForConditionalGeneration(cfg).eval()


def build_tiny(family: str, seed: int = 0, **kwargs: Any) -> nn.Module:
    if family == "llava-olmoe":
        return tiny_llava_olmoe(seed, **kwargs)
    if family == "qwen3-vl-moe":
        return tiny_qwen3_vl_moe(seed, **kwargs)
    raise ValueError(f"unknown tiny model family {family!r}; choose one of {FAMILIES}")


def encode_text(text: str) -> list[int]:
    return [b for b in text.encode("ascii", "replace") if 32 <= b < 127]


def decode_text(ids: Sequence[int]) -> str:
    return "".join(chr(i) for i in ids if 32 <= i < 127)


def _as_chw(image: Any, size: int) -> torch.Tensor:
    """HxWx3 uint8 (numpy / PIL) or 3xHxW float -> [3, size, size] float in [-1, 1]."""
    if hasattr(image, "convert"):  # PIL
        image = np.asarray(image.convert("RGB"))
    t = torch.as_tensor(np.asarray(image))
    if t.ndim == 3 and t.shape[-1] == 3:
        t = t.permute(2, 0, 1)
    t = t.float()
    if t.max() > 1.5:
        t = t / 255.0
    t = torch.nn.functional.interpolate(t[None], size=(size, size), mode="bilinear",
                                        align_corners=False)[0]
    return t * 2 - 1


class TinyProcessor:
    """Turns (images, prompts) into model inputs for a tiny model (left padding)."""

    def __init__(self, model: nn.Module) -> None:
        from transformers import LlavaForConditionalGeneration, Qwen3VLMoeForConditionalGeneration

        if isinstance(model, LlavaForConditionalGeneration):
            self.family = "llava-olmoe"
            vc = model.config.vision_config
            self.size = int(vc.image_size)
            self.n_tokens = (vc.image_size // vc.patch_size) ** 2
        elif isinstance(model, Qwen3VLMoeForConditionalGeneration):
            self.family = "qwen3-vl-moe"
            vc = model.config.vision_config
            self.size = 32
            self.patch, self.merge, self.tp = vc.patch_size, vc.spatial_merge_size, \
                vc.temporal_patch_size
            g = self.size // self.patch
            self.grid = (1, g, g)
            self.n_tokens = g * g // self.merge**2
        else:
            raise TypeError(f"TinyProcessor does not know {type(model).__name__}")

    def __call__(self, images: Sequence[Any], prompts: Sequence[str]) -> dict[str, torch.Tensor]:
        if len(images) != len(prompts):
            raise ValueError(f"{len(images)} images but {len(prompts)} prompts")
        seqs = []
        for p in prompts:
            text = encode_text(p)
            if self.family == "llava-olmoe":
                seqs.append([BOS] + [IMAGE] * self.n_tokens + text)
            else:
                seqs.append([BOS, VSTART] + [IMAGE] * self.n_tokens + [VEND] + text)
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), PAD, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for i, s in enumerate(seqs):
            ids[i, width - len(s):] = torch.tensor(s)
            mask[i, width - len(s):] = 1
        pix = torch.stack([_as_chw(im, self.size) for im in images])
        out: dict[str, torch.Tensor] = {"input_ids": ids, "attention_mask": mask}
        if self.family == "llava-olmoe":
            out["pixel_values"] = pix
        else:
            out["pixel_values"] = torch.cat([self._patches(x) for x in pix])
            out["image_grid_thw"] = torch.tensor([self.grid] * len(images))
            out["mm_token_type_ids"] = (ids == IMAGE).long()
        return out

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        return decode_text(ids)

    def _patches(self, img: torch.Tensor) -> torch.Tensor:
        """[3, H, W] -> [gh*gw, 3*T*P*P] in Qwen-VL's merge-window patch order."""
        p, m, t = self.patch, self.merge, self.tp
        c, h, w = img.shape
        gh, gw = h // p, w // p
        x = img[None].expand(t, c, h, w)
        x = x.reshape(t, c, gh // m, m, p, gw // m, m, p)
        x = x.permute(2, 5, 3, 6, 1, 0, 4, 7)
        return x.reshape(gh * gw, c * t * p * p).contiguous()


def tiny_inputs(model: nn.Module, batch: int = 1, seed: int = 0,
                prompts: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
    """Random 32x32 images and short prompts of different lengths, processed for ``model``."""
    rng = np.random.default_rng(seed)
    images = [rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(batch)]
    if prompts is None:
        words = ["what", "color", "is", "the", "shape", "how", "many", "dots"]
        prompts = [" ".join(rng.choice(words, size=2 + i % 3)) + "?" for i in range(batch)]
    return TinyProcessor(model)(images, prompts)
