"""Tiny models saved the way a real checkpoint is: ``save_pretrained`` of the model and of a
real processor (a tokenizer trained here with the ``tokenizers`` library, the family's own image
processor, a chat template), so that ``from_pretrained`` / ``AutoProcessor`` load them like any
hub model. Nothing is downloaded.

The tokenizer is a BPE trained on a small built-in corpus (the synthetic VQA questions and
answers, digits, colours) with the toy special tokens at the toy ids (``<pad>`` 0, ``<s>`` 1,
``</s>`` 2, ``<image>`` 3, ``<video>`` 4, ``<|vision_start|>`` 5, ``<|vision_end|>`` 6) and 128
tokens in all, so the tiny models' embedding size and placeholder ids are unchanged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from . import build_tiny
from .common import VOCAB

SPECIAL_TOKENS = [
    "<pad>",
    "<s>",
    "</s>",
    "<image>",
    "<video>",
    "<|vision_start|>",
    "<|vision_end|>",
]
#: the families with a pretrained-style builder here
PRETRAINED_FAMILIES = ("llava-olmoe", "gemma3")

CHAT_TEMPLATE = (
    "{% for message in messages %}{{ '<s>' if loop.first else '' }}"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}{{ image_placeholder }}"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %} answer:{% endif %}"
)


def _corpus() -> list[str]:
    from ...runtime.synthetic_vqa import COLORS, QUESTIONS, SHAPES

    words = list(QUESTIONS.values()) + list(COLORS) + list(SHAPES)
    words += [str(i) for i in range(100)] + ["yes", "no", "answer:", "how many", "which", "\n\n"]
    return words * 4


def train_tokenizer(**special: str) -> Any:
    """A ``PreTrainedTokenizerFast`` (BPE, byte-level, 128 tokens) trained on the corpus."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=[],
        min_frequency=1,
        show_progress=False,
        limit_alphabet=VOCAB - len(SPECIAL_TOKENS),
    )
    tok.train_from_iterator(_corpus(), trainer=trainer)
    if tok.get_vocab_size() > VOCAB:
        raise RuntimeError(f"tokenizer has {tok.get_vocab_size()} tokens, more than {VOCAB}")
    for i, t in enumerate(SPECIAL_TOKENS):
        assert tok.token_to_id(t) == i, (t, tok.token_to_id(t))
    return left_padded_tokenizer(
        tok, additional_special_tokens=SPECIAL_TOKENS[3:], extra_special_tokens=special or None
    )


def left_padded_tokenizer(tok: Any, **kwargs: Any) -> Any:
    """A ``PreTrainedTokenizerFast`` around the ``tokenizers.Tokenizer`` ``tok``: ``<pad>``,
    ``<s>`` and ``</s>`` special tokens, left padding (the toy ids' layout, which the digits
    tokenizer shares); ``kwargs``: its other arguments."""
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
        padding_side="left",
        **kwargs,
    )


def llava_processor(tokenizer: Any, config: Any, chat_template: str | None = None) -> Any:
    """A real ``LlavaProcessor`` for a LLaVA ``config`` with a CLIP vision tower: the CLIP
    image processor at the tower's size, ``<image>`` expanded to one token per kept patch,
    ``chat_template`` (default :data:`CHAT_TEMPLATE`)."""
    from transformers import CLIPImageProcessorPil, LlavaProcessor

    vc = config.vision_config
    size = int(vc.image_size)
    ip = CLIPImageProcessorPil(
        size={"shortest_edge": size}, crop_size={"height": size, "width": size}
    )
    # CLIP adds a CLS token (num_additional_image_tokens=1) that "default" drops again
    return LlavaProcessor(
        image_processor=ip,
        tokenizer=tokenizer,
        patch_size=int(vc.patch_size),
        num_additional_image_tokens=1,
        vision_feature_select_strategy=config.vision_feature_select_strategy,
        chat_template=(chat_template or CHAT_TEMPLATE).replace(
            "{{ image_placeholder }}", "<image>"
        ),
    )


def build_processor(family: str, model: Any) -> Any:
    """The family's real processor class around the trained tokenizer and its image processor."""
    if family == "gemma3":
        from transformers import Gemma3ImageProcessorPil, Gemma3Processor

        tok = train_tokenizer(
            boi_token="<|vision_start|>", image_token="<image>", eoi_token="<|vision_end|>"
        )
        size = int(model.config.vision_config.image_size)
        ip = Gemma3ImageProcessorPil(size={"height": size, "width": size}, do_pan_and_scan=False)
        # Gemma 3's processor expands its boi token into boi + image tokens + eoi
        return Gemma3Processor(
            image_processor=ip,
            tokenizer=tok,
            image_seq_length=int(model.config.mm_tokens_per_image),
            chat_template=CHAT_TEMPLATE.replace("{{ image_placeholder }}", "<|vision_start|>"),
        )
    if family == "llava-olmoe":
        return llava_processor(train_tokenizer(), model.config)
    raise ValueError(
        f"no pretrained-style builder for {family!r}; choose one of {PRETRAINED_FAMILIES}"
    )


def save_tiny_pretrained(
    family: str, directory: str | Path, seed: int = 0, **model_kwargs: Any
) -> Path:
    """Build the tiny ``family`` model and its real processor, ``save_pretrained`` both."""
    directory = Path(directory)
    model = build_tiny(family, seed=seed, **model_kwargs)
    proc = build_processor(family, model)
    model.generation_config.pad_token_id = 0
    model.generation_config.eos_token_id = 2
    model.save_pretrained(directory)
    proc.save_pretrained(directory)
    return directory
