"""Tiny text models by ``model_type``, for the families that wrap a vision tower around any
text model (LLaVA, LLaVA-OneVision, InternVL).

Hidden 64, 4 decoder layers, 8 routed experts, ``num_experts_per_tok`` 4 (every layer MoE);
DeepSeek-V3 with ``first_k_dense_replace = 0``, ``n_group = 2``, ``topk_group = 1``
(group-limited routing keeps 1 group of 4 experts, so any top_k in 1..4 is valid), one shared
expert; GPT-OSS with alternating ``sliding_attention`` / ``full_attention`` layers and a
16-token window (shorter than the prompts, so it is in effect), default RoPE.
"""

from __future__ import annotations

from typing import Any

from .configs import MoeSize, default_rope, text_fields


def text_model_config(kind: str, size: MoeSize) -> Any:
    """A small transformers config of text model ``kind`` (a ``model_type``) of ``size`` (a
    dense model ignores its experts)."""
    import transformers

    h, experts = size.hidden, size.experts
    head_dim = h // 4
    routed = dict(num_experts_per_tok=size.top_k)
    # each kind's config class and the fields it sets beyond configs.text_fields
    own: dict[str, tuple[str, dict[str, Any]]] = {
        "olmoe": (
            "OlmoeConfig",
            dict(routed, num_key_value_heads=4, intermediate_size=h, num_experts=experts),
        ),
        "qwen3_moe": (
            "Qwen3MoeConfig",
            dict(
                routed,
                head_dim=head_dim,
                moe_intermediate_size=h // 2,
                num_experts=experts,
                norm_topk_prob=True,
            ),
        ),
        "qwen2_moe": (
            "Qwen2MoeConfig",
            dict(
                routed,
                moe_intermediate_size=h // 2,
                shared_expert_intermediate_size=h,
                num_experts=experts,
                norm_topk_prob=False,
            ),
        ),
        "mixtral": (
            "MixtralConfig",
            dict(routed, head_dim=head_dim, intermediate_size=h, num_local_experts=experts),
        ),
        "deepseek_v3": (
            "DeepseekV3Config",
            dict(
                routed,
                num_key_value_heads=4,
                moe_intermediate_size=h // 2,
                n_routed_experts=experts,
                n_shared_experts=1,
                first_k_dense_replace=0,
                n_group=2,
                topk_group=1,
                norm_topk_prob=True,
                q_lora_rank=h // 2,
                kv_lora_rank=h // 4,
                qk_rope_head_dim=8,
                qk_nope_head_dim=8,
                v_head_dim=head_dim,
                routed_scaling_factor=1.0,
                rope_parameters=default_rope(),
            ),
        ),
        "gpt_oss": (
            "GptOssConfig",
            dict(
                routed,
                head_dim=head_dim,
                intermediate_size=h,
                num_local_experts=experts,
                sliding_window=16,
                layer_types=[
                    "sliding_attention" if i % 2 == 0 else "full_attention"
                    for i in range(size.layers)
                ],
                rope_parameters=default_rope(),
            ),
        ),
        "qwen2": ("Qwen2Config", {}),
        "qwen3": ("Qwen3Config", dict(head_dim=head_dim)),
    }
    if kind not in own:
        raise ValueError(f"no tiny text model {kind!r}; choose one of {sorted(own)}")
    config_class, fields = own[kind]
    return getattr(transformers, config_class)(**text_fields(h, size.layers, **fields))
