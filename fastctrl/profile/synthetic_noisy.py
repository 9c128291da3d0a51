"""A second built-in profile family, shaped like a real VQA profile: quality is measured by
answering, so it is noisy.

Where :func:`~fastctrl.profile.synthetic.synthetic_profile` stores each cell's expected
accuracy as its quality, a real profiler runs the model and scores answers: a cell's quality is
the mean of a few correct / wrong answers. :func:`noisy_vqa_profile` simulates that, on the
accuracy and latency formulas of :mod:`fastctrl.profile.synthetic` with:

- a different model: ``NOISY_GRIDS`` = max_crops (1, 2, 4, 8) x top_k (1, 2, 4, 8) x
  num_active_blocks (6, 9, 12) (48 configs), its own latency constants (``NOISY_LATENCY``:
  196 vision tokens per crop) and 5% log-normal latency noise per measured repeat (5 repeats);
- short-answer VQA (``NOISY_TASKS``): answers of 1-3 tokens (78% one token); task types that
  differ more in what they need (text-heavy images need detail, reasoning questions need
  experts and blocks) and in image size (documents and charts yield 3-8 crops, the other
  images 1-4, reasoning 1-5); difficulty ``q_max ~ Beta(6, 1.5)`` (some questions the model rarely gets right);
- ``quality_expected[r, c]`` = the expected accuracy ``p`` of the formulas, in its own column,
  for judging only;
- ``quality[r, c]`` = mean of ``n_answers`` (3) Bernoulli(p) answers, so 0, 1/3, 2/3 or 1.
  Answer ``j`` of request ``r`` under config ``c`` is correct iff
  ``Phi(rho * z[r, j] + sqrt(1 - rho^2) * e[r, c, j]) < p[r, c]`` with standard normal
  ``z``, ``e`` (a Gaussian copula): each answer is exactly Bernoulli(p), and answers of one
  request agree across configs (``rho`` = ``ANSWER_CORRELATION`` = 0.7), as a question that is
  hard for one config tends to be hard for its neighbours;
- features of other widths than the default's (1152-D image, 896-D text), built the same way.

So the hindsight oracle on measured quality picks lucky cells and is out of reach; the oracle
on ``quality_expected`` is the honest ceiling (:func:`fastctrl.env.evaluate_baselines` reports
both). ``answer_seed`` redraws the answers alone.

Observability, with the default family's probe (:func:`~fastctrl.profile.synthetic.probe_r2`,
fit on train, R^2 on test), on ``noisy_vqa_profile(5000, seed=0)``:

=====================  ======  =====================================================
factor                 R^2     meaning
=====================  ======  =====================================================
``v``                  0.957   visual detail needed
``r``                  0.942   reasoning needed
``n_native``           0.989   crops the image yields (image size)
``prompt_tokens``      0.812   prompt length (0.942 for its log, which is what is encoded)
``n_out``              0.129   answer length: the task type and a weak guess only
``q_max``              -0.031  difficulty
=====================  ======  =====================================================

(``python -c "from fastctrl.profile import noisy_vqa_profile, hidden_factor_r2;
print(hidden_factor_r2(noisy_vqa_profile(5000, seed=0)))"``). ``v`` and ``r`` read better
than in the default family only because they vary more here (same observation noise).
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtri

from ..space import ActionSpace
from .synthetic import (
    TaskSpec,
    _check_knobs,
    _draw_factors,
    _features,
    _latency,
    _quality,
    simulated_profile,
)
from .table import Profile

#: the noisy family's grid: a 12-block model with up to 8 experts per token and 8 crops
NOISY_GRIDS: dict[str, tuple[int, ...]] = {
    "max_crops": (1, 2, 4, 8),
    "top_k": (1, 2, 4, 8),
    "num_active_blocks": (6, 9, 12),
}
#: latency constants (ms) of the noisy family's model, same formula as the default's
NOISY_LATENCY: dict[str, float] = {
    "l0": 8.0,
    "vit_ms": 2.5,
    "tokens_per_crop": 196,
    "a_dense": 0.0035,
    "a_expert": 0.0012,
    "b_dense": 0.4,
    "b_expert": 0.1,
}
NOISY_LATENCY_SIGMA = 0.05
#: short-answer VQA ("answer with a single word or phrase"): 1-3 answer tokens. Task types
#: differ more than the default's in what they need (text-heavy images need detail, reasoning
#: questions need experts and blocks) and in image size (documents and charts are large).
NOISY_TASKS: dict[str, TaskSpec] = {
    "general": TaskSpec(0.35, (1.2, 8.0), (1.2, 6.0), 14.0, 1.0, native=(0.0, 0.5)),
    "ocr": TaskSpec(0.20, (8.0, 1.2), (1.2, 6.0), 16.0, 1.3, native=(0.3, 1.0)),
    "chart": TaskSpec(0.15, (5.0, 1.5), (5.0, 1.5), 28.0, 1.2, native=(0.3, 1.0)),
    "counting": TaskSpec(0.15, (4.0, 2.0), (1.5, 5.0), 12.0, 1.0, native=(0.0, 0.5)),
    "reasoning": TaskSpec(0.15, (1.5, 5.0), (8.0, 1.2), 60.0, 1.6, native=(0.0, 0.6)),
}
NOISY_ANSWER_SIGMA = 0.3
NOISY_ANSWER_MAX = 3
ANSWER_CORRELATION = 0.7


def noisy_vqa_profile(
    n_requests: int = 5000,
    seed: int = 0,
    *,
    n_answers: int = 3,
    answer_seed: int | None = None,
    n_repeats: int = 5,
    image_dim: int = 1152,
    text_dim: int = 896,
    space: ActionSpace | None = None,
    feature_noise: float = 0.08,
    train_split: float = 0.8,
    test_fraction: float = 0.2,
) -> Profile:
    """Simulate a profile whose quality is the mean of ``n_answers`` Bernoulli answers (see the
    module docstring); the expected accuracy is in ``profile.quality_expected``.

    Deterministic by ``seed``; ``answer_seed`` (default: derived from ``seed``) redraws only the
    answers, keeping requests, latencies and features. ``space`` defaults to ``NOISY_GRIDS``
    and must have the three default knobs.
    """
    if n_requests < 1:
        raise ValueError(f"n_requests must be >= 1, got {n_requests}")
    if n_answers < 1:
        raise ValueError(f"n_answers must be >= 1, got {n_answers}")
    if n_repeats < 1:
        raise ValueError(f"n_repeats must be >= 1, got {n_repeats}")
    if answer_seed is not None and answer_seed < 0:
        raise ValueError(f"answer_seed must be >= 0 or None, got {answer_seed}")
    if not 0 <= feature_noise < np.inf:
        raise ValueError(f"feature_noise must be finite and >= 0, got {feature_noise}")
    space = space or ActionSpace(NOISY_GRIDS)
    _check_knobs(space, "noisy")
    # streams of their own, so the answers can be redrawn without moving anything else
    rng = np.random.default_rng([seed, 2])
    max_crops = max(space["max_crops"].values)
    task_idx, f = _draw_factors(
        rng, n_requests, NOISY_TASKS, max_crops, NOISY_ANSWER_MAX, NOISY_ANSWER_SIGMA
    )
    q_max = rng.beta(6.0, 1.5, size=n_requests)

    expected = np.clip(_quality(space, f["v"], f["r"], f["n_native"], q_max), 0.0, 1.0)
    base = _latency(space, f["prompt_tokens"], f["n_native"], f["n_out"], **NOISY_LATENCY)
    latency = base[:, :, None] * rng.lognormal(
        0.0, NOISY_LATENCY_SIGMA, size=(*base.shape, n_repeats)
    )
    maps = np.random.default_rng([seed, 3])
    image, text = _features(
        rng, maps, task_idx, len(NOISY_TASKS), f, max_crops, image_dim, text_dim, feature_noise
    )

    answers = np.random.default_rng([seed, 4] if answer_seed is None else [seed, 5, answer_seed])
    quality = _answer_means(answers, expected, n_answers, ANSWER_CORRELATION)

    names = list(NOISY_TASKS)
    tasks = [names[i] for i in task_idx]
    split = dict(seed=seed, train_split=train_split, test_fraction=test_fraction)
    prof = simulated_profile(
        f"nvqa-{seed}",
        space,
        split,
        tasks,
        quality,
        latency,
        image,
        text,
        quality_expected=expected,
    )
    prof.hidden = {**f, "q_max": q_max}
    prof.simulator = __name__
    return prof


def _answer_means(
    rng: np.random.Generator, p: np.ndarray, n_answers: int, rho: float
) -> np.ndarray:
    """[R, C] mean of ``n_answers`` Bernoulli(p) answers, correlated ``rho`` across configs."""
    r, c = p.shape
    z = rng.standard_normal((r, 1, n_answers))  # per request and answer slot
    e = rng.standard_normal((r, c, n_answers))  # per cell
    latent = rho * z + np.sqrt(1.0 - rho**2) * e  # N(0, 1) per answer
    # correct iff Phi(latent) < p, i.e. latent < Phi^-1(p): exactly Bernoulli(p) per answer
    correct = latent < ndtri(np.clip(p, 0.0, 1.0))[:, :, None]
    return correct.mean(axis=2)
