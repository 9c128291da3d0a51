"""The built-in synthetic profile: a documented simulator of a MolmoE-like VLM on a VQA-like task.

It is the embedded default and the test bed, never presented as real model results. Every
request has hidden factors; the knobs' quality gains and latency costs depend on them, and the
features are noisy functions of them (a controller can learn from features, not read answers).

Hidden factors per request (drawn per task type, see ``TASKS``):
  ``v``  visual detail needed, in [0, 1]    ``r``  reasoning needed, in [0, 1]
  ``p``  prompt length (tokens)             ``n_native``  crops the image yields (1..12, size)
  ``n_out``  answer length (tokens)         ``q_max``  best reachable accuracy (difficulty)

Latency of config (crops, k, blocks), in ms, per measured repeat::

    crops_used = min(crops, n_native);  T = TOKENS_PER_CROP * crops_used + p
    latency = L0 + VIT_MS * (crops_used + 1)
              + blocks * (T * (A_DENSE + A_EXPERT * k) + n_out * (B_DENSE + B_EXPERT * k))
    latency *= lognormal(0, NOISE_SIGMA)   (measurement noise, independent per repeat)

i.e. it grows with vision tokens x active blocks and with experts x active blocks, plus a fixed
part (L0 + the vision tower) — the shape of a MoE decoder's prefill + decode cost.

Expected accuracy (VQA-style, in [0, 1]) with diminishing returns per knob::

    u  = crops_used / n_native                    (share of the image's detail seen)
    ke = log2(k) / log2(k_max);  kb = (blocks - b_min) / (b_max - b_min)
    quality = q_max * (1 - v**2 * (1 - u**0.6))                       # vision tokens
                    * (1 - (0.05 + 0.60 r) * (1 - ke))                # experts per token
                    * (1 - (0.05 + 0.75 r) * (1 - kb)**1.3)           # active blocks

Where the shapes come from: accuracy vs vision tokens is flat for general VQA and steep for
text-heavy images (token-pruning studies on LLaVA-1.5 / Matryoshka-style token budgets:
TextVQA-like tasks lose most when tokens are cut, GQA-like tasks little) -> the ``v``-weighted
concave curve. Reducing MoE top-k at inference costs little from k=8 to 4 and much at k=1
(reported for Mixtral/OLMoE-style top-k reduction) -> linear in log2(k), i.e. concave in k, steeper for
reasoning. Skipping decoder blocks keeps most accuracy for the first ~25% removed and collapses
beyond (ShortGPT / LayerSkip-style layer-removal curves) -> the convex deficit in kb, steeper
for reasoning. The constants are illustrative, chosen so the full MolmoE-1B-like model answers
in ~0.1-0.75 s and the cheapest config in ~10-30% of that (so every E5 budget, down to
0.35x the full latency, is feasible for every request).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..space import ActionSpace
from .table import FeatureStore, Profile, assign_splits

# latency constants (ms)
L0 = 6.0
VIT_MS = 1.5
TOKENS_PER_CROP = 144
A_DENSE = 0.002
A_EXPERT = 0.001
B_DENSE = 0.4
B_EXPERT = 0.1
NOISE_SIGMA = 0.03


@dataclass(frozen=True)
class TaskSpec:
    """Distribution of the hidden factors for one task type (Beta(a, b) for v and r)."""

    weight: float
    v: tuple[float, float]
    r: tuple[float, float]
    prompt_median: float
    answer_tokens: tuple[int, int]


TASKS: dict[str, TaskSpec] = {
    "general": TaskSpec(0.35, (1.5, 6.0), (1.5, 5.0), 14.0, (2, 5)),
    "ocr": TaskSpec(0.20, (6.0, 1.5), (1.5, 5.0), 16.0, (2, 8)),
    "chart": TaskSpec(0.15, (4.0, 2.0), (4.0, 2.0), 28.0, (2, 12)),
    "counting": TaskSpec(0.15, (3.0, 3.0), (2.0, 4.0), 12.0, (2, 3)),
    "reasoning": TaskSpec(0.15, (2.0, 4.0), (6.0, 1.5), 60.0, (4, 16)),
}


def _quality(space: ActionSpace, v, r, n_native, q_max) -> np.ndarray:
    crops = np.asarray(space["max_crops"].values, np.float64)
    ks = np.asarray(space["top_k"].values, np.float64)
    blocks = np.asarray(space["num_active_blocks"].values, np.float64)
    used = np.minimum(crops[None, :], n_native[:, None])                       # [R, Cc]
    u = used / n_native[:, None]
    s_vis = 1.0 - v[:, None] ** 2 * (1.0 - u ** 0.6)
    ke = np.log2(ks) / np.log2(ks.max()) if ks.max() > 1 else np.ones_like(ks)
    s_exp = 1.0 - (0.05 + 0.60 * r[:, None]) * (1.0 - ke[None, :])      # [R, Ck]
    span = blocks.max() - blocks.min()
    kb = (blocks - blocks.min()) / span if span > 0 else np.ones_like(blocks)
    s_blk = 1.0 - (0.05 + 0.75 * r[:, None]) * (1.0 - kb[None, :]) ** 1.3      # [R, Cb]
    q = (q_max[:, None, None, None] * s_vis[:, :, None, None] * s_exp[:, None, :, None]
         * s_blk[:, None, None, :])
    return q.reshape(len(v), -1)


def _latency(space: ActionSpace, p, n_native, n_out) -> np.ndarray:
    crops = np.asarray(space["max_crops"].values, np.float64)
    ks = np.asarray(space["top_k"].values, np.float64)
    blocks = np.asarray(space["num_active_blocks"].values, np.float64)
    used = np.minimum(crops[None, :], n_native[:, None])                       # [R, Cc]
    tokens = TOKENS_PER_CROP * used + p[:, None]
    per_block = (tokens[:, :, None] * (A_DENSE + A_EXPERT * ks[None, None, :])
                 + n_out[:, None, None] * (B_DENSE + B_EXPERT * ks[None, None, :]))  # [R,Cc,Ck]
    lat = (L0 + VIT_MS * (used + 1.0))[:, :, None, None] \
        + blocks[None, None, None, :] * per_block[:, :, :, None]
    return lat.reshape(len(p), -1)


def synthetic_profile(n_requests: int = 5000, seed: int = 0, *, n_repeats: int = 5,
                      image_dim: int = 768, text_dim: int = 2048,
                      space: ActionSpace | None = None, feature_noise: float = 0.08,
                      train_split: float = 0.8, test_fraction: float = 0.2) -> Profile:
    """Simulate a profile (see the module docstring for every formula).

    Deterministic by ``seed``. ``feature_noise`` is the std of the noise on the hidden factors
    the features are built from (on their [0, 1] scale); the per-dimension feature noise on top
    of it is fixed. The space must have the three default knobs (grids may differ).
    """
    if n_requests < 1:
        raise ValueError(f"n_requests must be >= 1, got {n_requests}")
    if n_repeats < 1:
        raise ValueError(f"n_repeats must be >= 1, got {n_repeats}")
    space = space or ActionSpace()
    needed = {"max_crops", "top_k", "num_active_blocks"}
    if set(space.names) != needed:
        raise ValueError(f"the synthetic profile simulates the knobs {sorted(needed)}, "
                         f"got {space.names}")
    rng = np.random.default_rng(seed)
    names = list(TASKS)
    weights = np.array([TASKS[t].weight for t in names])
    task_idx = rng.choice(len(names), size=n_requests, p=weights / weights.sum())
    v = np.empty(n_requests)
    r = np.empty(n_requests)
    p = np.empty(n_requests)
    n_out = np.empty(n_requests)
    for i, name in enumerate(names):
        m = task_idx == i
        spec = TASKS[name]
        v[m] = rng.beta(*spec.v, size=m.sum())
        r[m] = rng.beta(*spec.r, size=m.sum())
        p[m] = np.round(spec.prompt_median * rng.lognormal(0.0, 0.5, size=m.sum())) + 4
        n_out[m] = rng.integers(spec.answer_tokens[0], spec.answer_tokens[1] + 1, size=m.sum())
    max_crops = max(space["max_crops"].values)
    n_native = rng.integers(1, max_crops + 1, size=n_requests).astype(np.float64)
    q_max = rng.uniform(0.75, 0.98, size=n_requests)

    quality = np.clip(_quality(space, v, r, n_native, q_max), 0.0, 1.0)
    base = _latency(space, p, n_native, n_out)
    noise = rng.lognormal(0.0, NOISE_SIGMA, size=(*base.shape, n_repeats))
    latency = base[:, :, None] * noise

    # features: noisy observations of the factors, pushed through fixed random maps
    def observe(x: np.ndarray, scale: float = 1.0) -> np.ndarray:
        return x + rng.normal(0.0, feature_noise * scale, size=x.shape)

    onehot = np.eye(len(names))[task_idx]
    # image size and prompt length are known before inference in a real server, so they
    # are observed almost exactly; what a request needs (v, r) and how long its answer will
    # be (n_out, which servers predict from the prompt) are only visible through noise.
    z_img = np.column_stack([
        observe(v), observe(n_native / max_crops, 0.1), observe(onehot, 2.0),
        rng.normal(size=(n_requests, 6)),                       # nuisance: unrelated content
    ])
    z_txt = np.column_stack([
        observe(r), observe(np.log(p) / 5.0, 0.1), observe(n_out / 16.0, 0.3), observe(onehot, 2.0),
        rng.normal(size=(n_requests, 6)),
    ])
    maps = np.random.default_rng([seed, 1])  # the "model": fixed given the seed
    image = _embed(z_img, image_dim, maps)
    text = _embed(z_txt, text_dim, maps)
    image += rng.normal(0.0, 0.2, size=image.shape)
    text += rng.normal(0.0, 0.2, size=text.shape)

    ids = [f"syn-{seed}-{i:06d}" for i in range(n_requests)]
    splits = assign_splits(ids, seed=seed, train_split=train_split, test_fraction=test_fraction)
    features = FeatureStore(ids, image.astype(np.float32), text.astype(np.float32))
    prof = Profile(space, ids, [names[i] for i in task_idx], splits, quality.astype(np.float32),
                   latency.astype(np.float32), features)
    prof.hidden = {"v": v, "r": r, "prompt_tokens": p, "n_native": n_native, "n_out": n_out,
                   "q_max": q_max}
    return prof


def _embed(z: np.ndarray, dim: int, rng: np.random.Generator) -> np.ndarray:
    """A fixed random map from factors to a ``dim``-D feature: mostly linear (so a light
    projection can read the factors back) plus a tanh part (so it is not exactly linear)."""
    a = rng.normal(0.0, 1.0 / np.sqrt(z.shape[1]), size=(z.shape[1], dim))
    b = rng.normal(0.0, 1.0 / np.sqrt(z.shape[1]), size=(z.shape[1], dim))
    return z @ a + 0.3 * np.tanh(z @ b)
