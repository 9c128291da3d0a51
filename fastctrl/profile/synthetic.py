"""The built-in synthetic profile: a documented simulator of a MolmoE-like VLM on a VQA-like task.

It is the embedded default and the test bed, never presented as real model results. Every
request has hidden factors; the knobs' quality gains and latency costs depend on them, and the
features are noisy functions of them (a controller can learn from features, not read answers).
:mod:`fastctrl.profile.synthetic_noisy` builds a second family (answers as measured quality)
on the same formulas.

Hidden factors per request (drawn per task type, see ``TASKS``; kept in ``profile.hidden``):
  ``v``  visual detail needed, in [0, 1]    ``r``  reasoning needed, in [0, 1]
  ``p``  prompt length (tokens)             ``n_native``  crops the image yields (1..12, size)
  ``n_out``  answer length (tokens)         ``q_max``  best reachable accuracy (difficulty)

Answer length: ``n_out = clip(round(answer_median[task] * lognormal(0, 0.6)), 1, 16)``, the
medians 3-6 tokens by task — wide within a task, as a question does not fix its answer's length.

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
in ~0.05-0.65 s and the cheapest config in ~5-32% of that (so every E5 budget, down to
0.35x the full latency, is feasible for every request).

Features (image: ``v``, ``n_native``, task type; text: ``r``, ``log p``, task type, and a length
guess ``log n_out + N(0, ANSWER_HINT_SD = 1.4)``; each beside 6 nuisance dims, through fixed
random maps plus per-dimension noise). Image size and prompt length are known to a server, so
they are observed almost exactly; what a request needs (``v``, ``r``) only through noise;
answer length only through the task type and the weak guess; difficulty not at all. Measured
observability — :func:`probe_r2`, a least-squares probe (top-64 principal directions of the
train features) fit on train, R^2 on test — on ``synthetic_profile(5000, seed=0)``:

=====================  ======  =====================================================
factor                 R^2     meaning
=====================  ======  =====================================================
``v``                  0.924   visual detail needed
``r``                  0.926   reasoning needed
``n_native``           0.989   crops the image yields (image size)
``prompt_tokens``      0.804   prompt length (0.970 for its log, which is what is encoded)
``n_out``              0.218   answer length (was 0.98 before issue 14)
``q_max``              -0.005  difficulty
=====================  ======  =====================================================

(``python -c "from fastctrl.profile import synthetic_profile, hidden_factor_r2;
print(hidden_factor_r2(synthetic_profile(5000, seed=0)))"``)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

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
    """Distribution of the hidden factors for one task type (Beta(a, b) for v and r).

    Answer length is ``clip(round(answer_median * lognormal(0, ANSWER_SIGMA)), 1, ANSWER_MAX)``:
    the medians differ by task, but the spread within a task is wide, as in real VQA logs (a
    "how many" question can still get a sentence back).
    """

    weight: float
    v: tuple[float, float]
    r: tuple[float, float]
    prompt_median: float
    answer_median: float
    native: tuple[float, float] = (0.0, 1.0)
    """Range of the image size as a share of the largest grid crop count: ``n_native`` is
    uniform on the integers in [1 + lo * (max - 1), 1 + hi * (max - 1)] (default: all)."""


TASKS: dict[str, TaskSpec] = {
    "general": TaskSpec(0.35, (1.5, 6.0), (1.5, 5.0), 14.0, 3.0),
    "ocr": TaskSpec(0.20, (6.0, 1.5), (1.5, 5.0), 16.0, 4.0),
    "chart": TaskSpec(0.15, (4.0, 2.0), (4.0, 2.0), 28.0, 5.0),
    "counting": TaskSpec(0.15, (3.0, 3.0), (2.0, 4.0), 12.0, 3.0),
    "reasoning": TaskSpec(0.15, (2.0, 4.0), (6.0, 1.5), 60.0, 6.0),
}
ANSWER_SIGMA = 0.6
ANSWER_MAX = 16
#: sd (in log tokens) of the answer-length hint in the text features: what a length predictor
#: reading the prompt could know. 1.4 leaves n_out weakly observable (see the module docstring).
ANSWER_HINT_SD = 1.4


def _draw_factors(
    rng: np.random.Generator,
    n: int,
    tasks: dict[str, TaskSpec],
    max_native: int,
    answer_max: int = ANSWER_MAX,
    answer_sigma: float = ANSWER_SIGMA,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Task index [n] and the per-request factors v, r, prompt_tokens, n_out, n_native."""
    names = list(tasks)
    weights = np.array([tasks[t].weight for t in names])
    task_idx = rng.choice(len(names), size=n, p=weights / weights.sum())
    v, r, p, n_out = (np.empty(n) for _ in range(4))
    for i, name in enumerate(names):
        m = task_idx == i
        spec = tasks[name]
        k = int(m.sum())
        v[m] = rng.beta(*spec.v, size=k)
        r[m] = rng.beta(*spec.r, size=k)
        p[m] = np.round(spec.prompt_median * rng.lognormal(0.0, 0.5, size=k)) + 4
        n_out[m] = np.clip(
            np.round(spec.answer_median * rng.lognormal(0.0, answer_sigma, k)), 1, answer_max
        )
    n_native = np.empty(n)
    for i, name in enumerate(names):
        m = task_idx == i
        lo, hi = (int(round(1 + x * (max_native - 1))) for x in tasks[name].native)
        n_native[m] = rng.integers(lo, hi + 1, size=int(m.sum()))
    return task_idx, {"v": v, "r": r, "prompt_tokens": p, "n_native": n_native, "n_out": n_out}


def _features(
    rng: np.random.Generator,
    maps: np.random.Generator,
    task_idx: np.ndarray,
    n_tasks: int,
    f: dict[str, np.ndarray],
    max_native: int,
    image_dim: int,
    text_dim: int,
    feature_noise: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Image / text features: noisy observations of the factors through fixed random maps."""
    n = len(task_idx)

    def observe(x: np.ndarray, scale: float = 1.0) -> np.ndarray:
        return x + rng.normal(0.0, feature_noise * scale, size=x.shape)

    onehot = np.eye(n_tasks)[task_idx]
    # image size and prompt length are known before inference in a real server, so they
    # are observed almost exactly; what a request needs (v, r) only through noise. No server
    # knows the answer's length in advance: the text carries only a weak hint of it (a length
    # predictor's guess, sd ANSWER_HINT_SD in log tokens), beside the task type.
    hint = (np.log(f["n_out"]) + rng.normal(0.0, ANSWER_HINT_SD, size=n)) / np.log(ANSWER_MAX)
    z_img = np.column_stack(
        [
            observe(f["v"]),
            observe(f["n_native"] / max_native, 0.1),
            observe(onehot, 2.0),
            rng.normal(size=(n, 6)),  # nuisance: unrelated content
        ]
    )
    z_txt = np.column_stack(
        [
            observe(f["r"]),
            observe(np.log(f["prompt_tokens"]) / 5.0, 0.1),
            hint,
            observe(onehot, 2.0),
            rng.normal(size=(n, 6)),
        ]
    )
    image = _embed(z_img, image_dim, maps)
    text = _embed(z_txt, text_dim, maps)
    image += rng.normal(0.0, 0.2, size=image.shape)
    text += rng.normal(0.0, 0.2, size=text.shape)
    return image.astype(np.float32), text.astype(np.float32)


def _quality(space: ActionSpace, v, r, n_native, q_max) -> np.ndarray:
    crops = np.asarray(space["max_crops"].values, np.float64)
    ks = np.asarray(space["top_k"].values, np.float64)
    blocks = np.asarray(space["num_active_blocks"].values, np.float64)
    used = np.minimum(crops[None, :], n_native[:, None])  # [R, Cc]
    u = used / n_native[:, None]
    s_vis = 1.0 - v[:, None] ** 2 * (1.0 - u**0.6)
    ke = np.log2(ks) / np.log2(ks.max()) if ks.max() > 1 else np.ones_like(ks)
    s_exp = 1.0 - (0.05 + 0.60 * r[:, None]) * (1.0 - ke[None, :])  # [R, Ck]
    span = blocks.max() - blocks.min()
    kb = (blocks - blocks.min()) / span if span > 0 else np.ones_like(blocks)
    s_blk = 1.0 - (0.05 + 0.75 * r[:, None]) * (1.0 - kb[None, :]) ** 1.3  # [R, Cb]
    q = (
        q_max[:, None, None, None]
        * s_vis[:, :, None, None]
        * s_exp[:, None, :, None]
        * s_blk[:, None, None, :]
    )
    return q.reshape(len(v), -1)


def _latency(
    space: ActionSpace,
    p,
    n_native,
    n_out,
    *,
    l0: float = L0,
    vit_ms: float = VIT_MS,
    tokens_per_crop: float = TOKENS_PER_CROP,
    a_dense: float = A_DENSE,
    a_expert: float = A_EXPERT,
    b_dense: float = B_DENSE,
    b_expert: float = B_EXPERT,
) -> np.ndarray:
    crops = np.asarray(space["max_crops"].values, np.float64)
    ks = np.asarray(space["top_k"].values, np.float64)
    blocks = np.asarray(space["num_active_blocks"].values, np.float64)
    used = np.minimum(crops[None, :], n_native[:, None])  # [R, Cc]
    tokens = tokens_per_crop * used + p[:, None]
    per_block = tokens[:, :, None] * (a_dense + a_expert * ks[None, None, :]) + n_out[
        :, None, None
    ] * (b_dense + b_expert * ks[None, None, :])  # [R,Cc,Ck]
    lat = (l0 + vit_ms * (used + 1.0))[:, :, None, None] + blocks[None, None, None, :] * per_block[
        :, :, :, None
    ]
    return lat.reshape(len(p), -1)


def synthetic_profile(
    n_requests: int = 5000,
    seed: int = 0,
    *,
    n_repeats: int = 5,
    image_dim: int = 768,
    text_dim: int = 2048,
    space: ActionSpace | None = None,
    feature_noise: float = 0.08,
    train_split: float = 0.8,
    test_fraction: float = 0.2,
) -> Profile:
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
    _check_knobs(space, "synthetic")
    rng = np.random.default_rng(seed)
    max_crops = max(space["max_crops"].values)
    task_idx, f = _draw_factors(rng, n_requests, TASKS, max_crops)
    q_max = rng.uniform(0.75, 0.98, size=n_requests)

    quality = np.clip(_quality(space, f["v"], f["r"], f["n_native"], q_max), 0.0, 1.0)
    base = _latency(space, f["prompt_tokens"], f["n_native"], f["n_out"])
    noise = rng.lognormal(0.0, NOISE_SIGMA, size=(*base.shape, n_repeats))
    latency = base[:, :, None] * noise

    maps = np.random.default_rng([seed, 1])  # the "model": fixed given the seed
    image, text = _features(
        rng, maps, task_idx, len(TASKS), f, max_crops, image_dim, text_dim, feature_noise
    )
    names = list(TASKS)
    tasks = [names[i] for i in task_idx]
    split = dict(seed=seed, train_split=train_split, test_fraction=test_fraction)
    prof = simulated_profile(f"syn-{seed}", space, split, tasks, quality, latency, image, text)
    prof.hidden = {**f, "q_max": q_max}
    prof.simulator = __name__
    return prof


#: the knobs the simulators model (their grids may differ)
SIMULATED_KNOBS = ("max_crops", "top_k", "num_active_blocks")


def simulated_profile(
    id_prefix: str,
    space: ActionSpace,
    split: Mapping[str, Any],
    task_types: list[str],
    quality: np.ndarray,
    latency: np.ndarray,
    image: np.ndarray,
    text: np.ndarray,
    **columns: np.ndarray,
) -> Profile:
    """A simulator's requests as a :class:`Profile`: ids ``<id_prefix>-<i>``, assigned to splits
    by ``split`` (:func:`assign_splits`' keywords), with their task types, quality, latency,
    features and any other ``Profile`` ``columns`` (``quality_expected``)."""
    ids = [f"{id_prefix}-{i:06d}" for i in range(len(task_types))]
    splits = assign_splits(ids, **split)
    features = FeatureStore(ids, image, text)
    return Profile(space, ids, task_types, splits, quality, latency, features, **columns)


def _check_knobs(space: ActionSpace, profile: str) -> None:
    if set(space.names) != set(SIMULATED_KNOBS):
        raise ValueError(
            f"space: the {profile} profile simulates the knobs {sorted(SIMULATED_KNOBS)}, "
            f"got {space.names}"
        )


def _embed(z: np.ndarray, dim: int, rng: np.random.Generator) -> np.ndarray:
    """A fixed random map from factors to a ``dim``-D feature: mostly linear (so a light
    projection can read the factors back) plus a tanh part (so it is not exactly linear)."""
    a = rng.normal(0.0, 1.0 / np.sqrt(z.shape[1]), size=(z.shape[1], dim))
    b = rng.normal(0.0, 1.0 / np.sqrt(z.shape[1]), size=(z.shape[1], dim))
    return z @ a + 0.3 * np.tanh(z @ b)


# ---------------------------------------------------------------------------- observability
def probe_r2(
    profile: Profile,
    values: np.ndarray | Mapping[str, np.ndarray],
    *,
    n_components: int = 64,
    seed: int = 0,
    fit_split: str = "train",
    score_split: str = "test",
) -> float | dict[str, float]:
    """R^2 on ``score_split`` of a least-squares linear probe from the features to ``values``
    (one value per request; a mapping of name -> values gives one R^2 per name).

    The probe reads the concatenated [image, text] features, standardised with the
    ``fit_split`` statistics, through their top ``n_components`` principal directions on
    ``fit_split`` (a randomised SVD, seeded), and is fit by ordinary least squares (+ an
    intercept) on ``fit_split``. The projection keeps the probe from fitting the per-dimension
    feature noise with thousands of coefficients; the features live near a ~30-D manifold, so
    64 directions keep what a linear read-out can use (see the module docstring).
    """
    if profile.features is None:
        raise ValueError("probe_r2: the profile has no feature store")
    named = dict(values) if isinstance(values, Mapping) else {"": values}
    if not named:
        raise ValueError("probe_r2: values is an empty mapping")
    ys = []
    for name, v in named.items():
        y = np.asarray(v, dtype=np.float64).reshape(-1)
        what = f"values[{name!r}]" if name else "values"
        if len(y) != profile.n_requests:
            raise ValueError(
                f"probe_r2: {what} must have one entry per request "
                f"({profile.n_requests}), got {len(y)}"
            )
        if not np.isfinite(y).all():
            raise ValueError(f"probe_r2: {what} contains NaN or inf")
        ys.append(y)
    if n_components < 1:
        raise ValueError(f"probe_r2: n_components must be >= 1, got {n_components}")
    fit, score = profile.split_indices(fit_split), profile.split_indices(score_split)
    if len(fit) <= n_components + 1 or len(score) < 2:
        raise ValueError(
            f"probe_r2: need more than n_components + 1 = {n_components + 1} "
            f"requests in fit_split={fit_split!r} (got {len(fit)}) and >= 2 in "
            f"score_split={score_split!r} (got {len(score)})"
        )
    y = np.stack(ys, 1)  # [R, n_targets]
    var = y[score].var(0)
    if (var == 0).any():
        raise ValueError(f"probe_r2: values are constant on score_split={score_split!r}")
    x = np.hstack([profile.features.image, profile.features.text]).astype(np.float64)
    mu, sd = x[fit].mean(0), x[fit].std(0)
    x = (x - mu) / np.where(sd > 0, sd, 1.0)
    basis = _top_directions(x[fit], n_components, np.random.default_rng(seed))
    design = np.c_[x @ basis, np.ones(len(x))]
    coef, *_ = np.linalg.lstsq(design[fit], y[fit], rcond=None)
    r2 = 1.0 - ((design[score] @ coef - y[score]) ** 2).mean(0) / var
    out = {name: float(v) for name, v in zip(named, r2, strict=True)}
    return out if isinstance(values, Mapping) else out[""]


def hidden_factor_r2(profile: Profile, **probe_kwargs: Any) -> dict[str, float]:
    """:func:`probe_r2` of every hidden factor of a synthetic profile (``profile.hidden``),
    plus ``log_prompt_tokens`` (prompt length is observed on a log scale)."""
    if profile.hidden is None:
        raise ValueError(
            "hidden_factor_r2: the profile has no hidden factors (only the "
            "synthetic simulators keep them)"
        )
    targets = dict(profile.hidden)
    if "prompt_tokens" in targets:
        targets["log_prompt_tokens"] = np.log(targets["prompt_tokens"])
    return probe_r2(profile, targets, **probe_kwargs)


def _top_directions(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """[D, k] top right-singular vectors of ``x`` (randomised range finder, 4 power steps)."""
    k = min(k, *x.shape)
    q = x @ rng.normal(size=(x.shape[1], min(k + 16, x.shape[1])))
    for _ in range(4):  # power steps sharpen the spectrum so the top k are found accurately
        q, _ = np.linalg.qr(x @ (x.T @ q))
    _, _, vt = np.linalg.svd(q.T @ x, full_matrices=False)
    return vt[:k].T
