"""``python -m fastctrl.digits.train``: train the digits VLM from scratch, elastically.

Two stages. First ``--vision_steps`` steps train the vision tower and the projector alone on a
dense target: a training-only linear head on the projector's output predicts, per vision
token, the digit under its patch (or none). Trained end to end from the start, the model sat
at the answer prior for hundreds of steps (measured on an earlier, smaller version of this
model: 0.33 validation accuracy after 500 steps); with readable vision tokens the language
model only has to learn where to look.

Then every step trains the full config and ``--sampled`` random reduced configs (the
"sandwich" of slimmable networks; LayerSkip / Ada-K / AdaLLaVA train the same knobs) on the
same batch of ``train``-pool pages: a ``top_k`` from 1 to the full top-k, a depth (the model
exits after that block through the final norm and the LM head) and a vision-token budget
(``max_crops`` of a 4-unit grid: a quarter to all of the 16 vision tokens). Reduced configs
are applied by :func:`fastctrl.hook` with the config pinned, i.e. by exactly the code that
applies them at inference, so what is trained is what is served. Loss: cross-entropy of the
answer tokens, the reduced configs' losses weighted ``--reduced_weight`` each, plus the dense
vision loss weighted ``--aux_weight`` and the match loss below.

The prompt puts the question before the image (``<s> question <image>*16 answer:``, the
processor's chat template), so that the vision tokens can attend to it, and a second dense
loss, weighted ``--match_weight``, asks the language model for that: a training-only head on
its layer-``--match_layer`` output predicts, per vision token, whether the token's cell is one
the question is about (the asked cell, the cells holding the asked digit or the largest one,
the cells of the asked row or column: :func:`~fastctrl.digits.pages.relevant_patches`).
Without it the model answered ``exists`` and ``count`` at their priors in every variant tried
(README, "the digits benchmark"). One question per page by default (``--turns``): in
multi-turn conversations a later turn's ``answer:`` sits at a varying distance from the
vision tokens, which measured slower for ``read``. Neither training-only head is saved.

Seeded (weights, pages, sampled configs); ``--threads`` torch threads; a tqdm bar; at the end
the model (``model.safetensors``, ``--save_dtype``), its processor and ``training.json``
(settings, loss curve, validation accuracy per config and per question type, wall time) are
written with ``save_pretrained``.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from .. import cli, io
from ..space import ActionSpace, Config
from ..train.schedules import lr_factor
from .model import IMAGE, BatchEncoder, DigitsModelConfig, build_model, build_processor
from .pages import NO_DIGIT, PageGenerator, patch_labels, relevant_patches

log = logging.getLogger(__name__)


def training_space(cfg: DigitsModelConfig) -> ActionSpace:
    """The grid the trainer samples from (and the widest the profiler can sweep)."""
    return ActionSpace.from_dict(
        {
            "max_crops": [1, 2, 3, 4],
            "top_k": list(range(1, cfg.top_k + 1)),
            "num_active_blocks": list(range(1, cfg.layers + 1)),
        }
    )


@dataclass
class DigitsTrainArgs:
    """Train the digits VLM (LLaVA + OLMoE, stock transformers classes) from scratch on CPU."""

    output_dir: str = "runs/digits/model"
    """Where the model (save_pretrained), its processor and training.json go."""
    steps: int = 1400
    """Second-stage steps: the full config and --sampled reduced ones on each batch."""
    batch_size: int = 96
    """Training pages per second-stage step."""
    lr: float = 2e-3
    """Peak AdamW learning rate of each stage (linear warm-up, then cosine to 0)."""
    warmup_steps: int = 50
    """Linear learning-rate warm-up steps of each stage."""
    weight_decay: float = 0.01
    """AdamW weight decay (weights only; norms and biases are not decayed)."""
    turns: int = 1
    """Questions per training page (>1: a multi-turn conversation about one image, the first
    turn the served prompt, every answer a target; measured slower to learn ``read``, whose
    later turns sit at a varying distance from the vision tokens)."""
    sampled: int = 1
    """Random reduced configs trained per step besides the full one."""
    reduced_weight: float = 1.0
    """Weight of each reduced config's answer loss (the full config's weighs 1)."""
    vision_steps: int = 800
    """First-stage steps: vision tower + projector on the dense per-token digit loss."""
    vision_batch_size: int = 128
    """Training pages per first-stage step."""
    aux_weight: float = 0.5
    """Weight of the dense per-vision-token digit loss in the second stage (0: off)."""
    match_weight: float = 1.0
    """Weight of the dense question-to-vision-token match loss (0: off): a training-only
    head on the language model's ``match_layer`` output predicts, per vision token, whether
    its cell is one the first question is about (:func:`relevant_patches`)."""
    match_layer: int = 3
    """The language-model layer whose output the match head reads (1 .. the model's layers)."""
    save_dtype: str = "bfloat16"
    """Dtype of the saved weights (``bfloat16`` halves the shipped file); the final per-knob
    accuracies are measured on the weights rounded to it."""
    seed: int = 0
    """Seeds the weights, the training pages and the sampled configs."""
    threads: int = 2
    """Torch CPU threads."""
    eval_every: int = 350
    """Validation accuracy every this many second-stage steps (and after the last)."""
    eval_pages: int = 512
    """Validation-pool pages for the accuracy checks during and after training."""
    quiet: bool = False
    """No progress bars."""

    def __post_init__(self) -> None:
        cli.need_at_least(
            self, 1, "steps", "batch_size", "threads", "eval_every", "eval_pages", "turns"
        )
        cli.need_at_least(self, 0, "sampled", "warmup_steps", "vision_steps")
        cli.need_at_least(self, 1, "vision_batch_size", "match_layer")
        if self.save_dtype not in ("float32", "bfloat16", "float16"):
            raise ValueError(
                f"--save_dtype must be float32, bfloat16 or float16, got {self.save_dtype!r}"
            )
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"--lr must be a positive number, got {self.lr}")


def sample_config(space: ActionSpace, rng: np.random.Generator) -> Config:
    return space.config([int(rng.integers(len(space[n].values))) for n in space.names])


Batch = tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor, torch.Tensor]


def encode_batches(encoder: BatchEncoder, pages: list, batch: int = 128) -> list[Batch]:
    """Teacher-forced ``(inputs, rows, positions, targets)`` per batch of ``pages``
    (:meth:`BatchEncoder.conversations`, one turn), encoded once for every evaluation."""
    return [
        encoder.conversations(
            [p.image for p in pages[i : i + batch]],
            [[(p.question, p.answer)] for p in pages[i : i + batch]],
        )
        for i in range(0, len(pages), batch)
    ]


def answer_logits(
    model: Any,
    inputs: dict[str, torch.Tensor],
    rows: torch.Tensor,
    pos: torch.Tensor,
    **kwargs: Any,
) -> tuple[torch.Tensor, Any]:
    """Logits at each answer token's predicting position, and the model's output."""
    out = model(**inputs, **kwargs)
    # a reduced config drops image tokens, all before the first answer token
    shift = inputs["input_ids"].shape[1] - out.logits.shape[1]
    return out.logits[rows, pos - shift], out


@torch.no_grad()
def correct(model: Any, handle: Any, batches: list[Batch], config: Config) -> np.ndarray:
    """Per page, whether ``config``'s greedy answer is right: every answer token (and the
    closing ``</s>``) the argmax given the right ones before it, which is exactly when greedy
    decoding emits the whole answer."""
    handle.pin(config)
    right = []
    for inputs, rows, pos, targets in batches:
        logits, _ = answer_logits(model, inputs, rows, pos)
        wrong = (allowed_argmax(model, logits) != targets).long()
        n = inputs["input_ids"].shape[0]
        right.append((torch.zeros(n, dtype=torch.long).index_add(0, rows, wrong) == 0).numpy())
    return np.concatenate(right)


def accuracy(model: Any, handle: Any, batches: list[Batch], config: Config) -> float:
    return float(correct(model, handle, batches, config).mean())


def per_task(right: np.ndarray, tasks: list[str]) -> dict[str, float]:
    return {t: round(float(right[[x == t for x in tasks]].mean()), 4) for t in dict.fromkeys(tasks)}


def allowed_argmax(model: Any, logits: torch.Tensor) -> torch.Tensor:
    """Greedy choice among the tokens generation may emit (what ``generate`` returns)."""
    banned = model.generation_config.suppress_tokens or []
    logits = logits.clone()
    logits[:, banned] = -math.inf
    return logits.argmax(-1)


def lr_at(step: int, args: DigitsTrainArgs, steps: int | None = None) -> float:
    steps = args.steps if steps is None else steps
    if step < args.warmup_steps:
        return args.lr * (step + 1) / args.warmup_steps
    t = (step - args.warmup_steps) / max(1, steps - args.warmup_steps)
    return args.lr * lr_factor("cosine", t)


def vision_tokens(model: Any, pixels: torch.Tensor) -> torch.Tensor:
    """``[B, N, hidden]``: the projector's output, what the language model receives."""
    out = model.model.get_image_features(pixel_values=pixels)
    feats = getattr(out, "pooler_output", out)
    if isinstance(feats, (list, tuple)):
        feats = torch.stack(list(feats))
    return feats.reshape(pixels.shape[0], -1, feats.shape[-1])


def pretrain_vision(
    model: Any,
    head: torch.nn.Module,
    encoder: BatchEncoder,
    gen: PageGenerator,
    args: DigitsTrainArgs,
    cfg: DigitsModelConfig,
) -> float:
    """Stage 1: vision tower + projector + head on the per-token digit target; returns the
    digit accuracy on the last batch's digit patches."""
    params = [
        *model.model.vision_tower.parameters(),
        *model.model.multi_modal_projector.parameters(),
        *head.parameters(),
    ]
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=args.weight_decay)
    model.train()
    acc = float("nan")
    bs = args.vision_batch_size
    for step in tqdm(range(args.vision_steps), desc="vision", disable=args.quiet):
        pages = [gen.page(step * bs + j) for j in range(bs)]
        target = torch.as_tensor(np.stack([patch_labels(p.digits, cfg.patch) for p in pages]))
        for group in opt.param_groups:
            group["lr"] = lr_at(step, args, args.vision_steps)
        logits = head(vision_tokens(model, encoder.pixels([p.image for p in pages])))
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), target.flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step + 1 == args.vision_steps:
            digit = target < NO_DIGIT
            acc = float((logits.argmax(-1) == target)[digit].float().mean())
    return acc


def train(args: DigitsTrainArgs) -> dict[str, Any]:
    from ..model_hook import hook

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    cfg = DigitsModelConfig()
    model = build_model(cfg, seed=args.seed)
    processor = build_processor(cfg)
    encoder = BatchEncoder(processor, cfg)
    space = training_space(cfg)
    gen = PageGenerator("train", args.seed)
    val_gen = PageGenerator("val", args.seed + 1)
    val = [val_gen.page(i) for i in range(args.eval_pages)]
    encoder.check(processor, [p.image for p in val[:8]], [p.question for p in val[:8]])
    val_batches = encode_batches(encoder, val)
    val_tasks = [p.task_type for p in val]
    rng = np.random.default_rng([args.seed, 1])
    if args.match_layer > cfg.layers:
        raise ValueError(
            f"--match_layer must be at most the model's {cfg.layers} layers, got {args.match_layer}"
        )
    aux_head = torch.nn.Linear(cfg.hidden, NO_DIGIT + 1)
    match_head = torch.nn.Linear(cfg.hidden, 1)
    t0 = time.perf_counter()
    vision_acc = (
        pretrain_vision(model, aux_head, encoder, gen, args, cfg) if args.vision_steps else None
    )
    page_i = args.vision_steps * args.vision_batch_size
    projected: list[torch.Tensor] = []  # the projector's output of the current forward
    capture = model.model.multi_modal_projector.register_forward_hook(
        lambda mod, args, out: projected.append(out)
    )
    named = [
        *model.named_parameters(),
        *aux_head.named_parameters(prefix="aux"),
        *match_head.named_parameters(prefix="match"),
    ]
    decay = [p for n, p in named if p.ndim >= 2 and "embed" not in n]
    other = [p for n, p in named if not (p.ndim >= 2 and "embed" not in n)]
    opt = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": args.weight_decay},
            {"params": other, "weight_decay": 0.0},
        ],
        lr=args.lr,
    )
    handle = hook(model, space=space)
    full, cheapest = space.full(), space.config([0] * len(space.names))
    curve: list[dict[str, float]] = []
    match_loss = float("nan")
    try:
        bar = tqdm(range(args.steps), desc="digits", disable=args.quiet)
        for step in bar:
            talks = [gen.conversation(page_i + j, args.turns) for j in range(args.batch_size)]
            page_i += args.batch_size
            pages = [page for page, _ in talks]
            inputs, rows, pos, target = encoder.conversations(
                [p.image for p in pages], [[(q, a) for _, q, a in qa] for _, qa in talks]
            )
            patch_target = torch.as_tensor(
                np.stack([patch_labels(p.digits, cfg.patch) for p in pages])
            )
            match_target = torch.as_tensor(
                np.stack([relevant_patches(qa[0][1], p.digits, cfg.patch) for p, qa in talks])
            ).float()
            for group in opt.param_groups:
                group["lr"] = lr_at(step, args)
            model.train()
            opt.zero_grad(set_to_none=True)
            losses = []
            for j, config in enumerate(
                [full] + [sample_config(space, rng) for _ in range(args.sampled)]
            ):
                handle.pin(config)
                projected.clear()
                dense = j == 0  # the vision side and the layers up to match_layer: full
                logits, out = answer_logits(
                    model, inputs, rows, pos, output_hidden_states=dense and args.match_weight > 0
                )
                loss = torch.nn.functional.cross_entropy(logits.float(), target)
                total = loss * (1.0 if j == 0 else args.reduced_weight)
                if dense and args.aux_weight > 0:
                    aux = aux_head(projected[-1]).flatten(0, 1)
                    total = total + args.aux_weight * torch.nn.functional.cross_entropy(
                        aux.float(), patch_target.flatten()
                    )
                if dense and args.match_weight > 0:
                    h = out.hidden_states[args.match_layer]
                    vis = h[inputs["input_ids"] == IMAGE].reshape(len(pages), -1, h.shape[-1])
                    match = torch.nn.functional.binary_cross_entropy_with_logits(
                        match_head(vis).squeeze(-1).float(), match_target
                    )
                    total = total + args.match_weight * match
                    match_loss = float(match.detach())
                total.backward()
                losses.append(float(loss.detach()))
            torch.nn.utils.clip_grad_norm_([p for _, p in named], 1.0)
            opt.step()
            bar.set_postfix(full=f"{losses[0]:.3f}", reduced=f"{np.mean(losses[1:] or [0]):.3f}")
            if (step + 1) % args.eval_every == 0 or step + 1 == args.steps:
                model.eval()
                right = correct(model, handle, val_batches, full)
                point = {
                    "step": step + 1,
                    "wall_s": round(time.perf_counter() - t0, 1),
                    "loss_full": losses[0],
                    "loss_match": match_loss,
                    "val_acc_full": float(right.mean()),
                    "val_acc_full_per_task": per_task(right, val_tasks),
                    "val_acc_cheapest": accuracy(model, handle, val_batches, cheapest),
                }
                curve.append(point)
                log.info("step %d: %s", step + 1, point)
                bar.write(
                    f"step {step + 1}: val accuracy full {point['val_acc_full']:.3f} "
                    f"{point['val_acc_full_per_task']}, "
                    f"cheapest {point['val_acc_cheapest']:.3f}"
                )
        wall = time.perf_counter() - t0
        model.eval()
        save_dtype = getattr(torch, args.save_dtype)
        model.to(save_dtype).float()  # what is measured below is what is saved
        per_knob = {}
        for name in space.names:  # each knob alone, the others at full
            for v in space[name].values:
                c = space.config_from_values(**{**full.values, name: v})
                per_knob[f"{name}={v}"] = accuracy(model, handle, val_batches, c)
    finally:
        handle.remove()
        capture.remove()
    out = Path(args.output_dir)
    model.to(save_dtype).save_pretrained(out)
    processor.save_pretrained(out)
    report = {
        "args": asdict(args),
        "model": asdict(cfg),
        "space": space.to_dict(),
        "parameters": sum(p.numel() for p in model.parameters()),
        "train_wall_s": round(wall, 1),
        "torch_threads": args.threads,
        "pages_seen": page_i,
        "vision_patch_accuracy": vision_acc,
        "curve": curve,
        "val_accuracy_per_knob": per_knob,
    }
    io.write_json(out / "training.json", report)
    return report


def main(argv: list[str] | None = None) -> int:
    args = cli.parse(DigitsTrainArgs, argv, prog="python -m fastctrl.digits.train")
    return cli.execute(run, args)


def run(args: DigitsTrainArgs) -> int:
    """Train and save the model (the parsed command line of ``fastctrl digits train``)."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    report = train(args)
    print(f"trained in {report['train_wall_s']} s; validation accuracy per knob (others full):")
    for k, v in report["val_accuracy_per_knob"].items():
        print(f"  {k:22s} {v:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
