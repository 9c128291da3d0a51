"""Quality metrics for profiling and live evaluation: a metric maps one generation to a score
in [0, 1].

Two kinds, each a function of exactly what it reads:

- an **answer metric** ``fn(prediction_text, references) -> float`` scores the decoded answer
  against the reference answers (a str or a list of reference strings);
- an **agreement metric** ``fn(prediction_ids, full_config_ids) -> float`` compares the
  generated token ids with the tokens the full configuration generated for the same request
  (no answers needed).

:class:`Metric` wraps one with its name and kind, so a caller knows what to hand it:
:meth:`Metric.score` takes all four values by keyword and passes the metric the two it reads.
:data:`METRICS` is the registry of the built-in ones and :func:`resolve_metric` picks one. By
default each benchmark is scored as its reference evaluator (the code behind the published
numbers) scores it; golden cases produced by running those evaluators are in
``tests/fixtures/metrics_golden/`` and ``docs/metrics.md`` lists every departure:

- ``vqa``: VQAv2 / OK-VQA accuracy (the official ``vqaEval.py``, 2021);
- ``textvqa``: TextVQA / VizWiz accuracy (the M4C / EvalAI evaluator: tokenised first);
- ``anls``: DocVQA / InfographicVQA ANLS (the official script: whitespace collapsed, a
  similarity of exactly 0.5 kept);
- ``relaxed_accuracy``: ChartQA (pix2struct's ``relaxed_correctness``);
- ``chartqapro``: ChartQAPro (its evaluator: numbers within 5 %, ANLS for text, lists item
  by item, exact match for years);
- ``mmmu``: MMMU (its evaluator, multiple-choice and open questions);
- ``multiple_choice``: the chosen option letter against the reference letter;
- ``exact_match``: VQA-normalised equality with any reference;
- the paper-literal / earlier variants, by name: ``vqa_normalized``, ``anls_paper``,
  ``relaxed_accuracy_paper``;
- ``agreement`` (the agreement kind): no answers needed, token agreement with the full
  configuration (a proxy).

Answer metrics raise ``ValueError`` without a reference (``None`` or an empty list) and
``TypeError`` for a prediction or reference that is not a str.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from .metrics_anls import ANLS_TAU, anls, anls_paper
from .metrics_chart import (
    RELAXED_TOLERANCE,
    chartqapro_accuracy,
    relaxed_accuracy,
    relaxed_accuracy_paper,
)
from .metrics_choice import extract_choice, mmmu_accuracy, multiple_choice
from .metrics_common import levenshtein
from .metrics_vqa import (
    exact_match,
    normalize_answer,
    textvqa_accuracy,
    tokenize_answer,
    vqa_accuracy,
    vqa_accuracy_normalized,
)

__all__ = [
    "ANLS_TAU",
    "METRICS",
    "METRIC_KINDS",
    "RELAXED_TOLERANCE",
    "AgreementFn",
    "AnswerFn",
    "Metric",
    "MetricKind",
    "agreement",
    "agreement_metric",
    "anls",
    "anls_paper",
    "answer_metric",
    "chartqapro_accuracy",
    "exact_match",
    "extract_choice",
    "levenshtein",
    "metric_for_dataset",
    "mmmu_accuracy",
    "multiple_choice",
    "normalize_answer",
    "relaxed_accuracy",
    "relaxed_accuracy_paper",
    "resolve_metric",
    "textvqa_accuracy",
    "tokenize_answer",
    "vqa_accuracy",
    "vqa_accuracy_normalized",
]


AnswerFn = Callable[[str, "str | Sequence[str] | None"], float]
"""An answer metric: ``(prediction_text, references) -> score``."""
AgreementFn = Callable[[Sequence[int], Sequence[int]], float]
"""An agreement metric: ``(prediction_ids, full_config_ids) -> score``."""
MetricKind = Literal["answer", "agreement"]
METRIC_KINDS: tuple[MetricKind, ...] = ("answer", "agreement")


def agreement(pred_ids: Sequence[int], full_ids: Sequence[int]) -> float:
    """Proxy without answers: fraction of generated token positions equal to the full
    configuration's generation for the same request (1.0 for the full configuration itself);
    positions past the shorter generation count as different."""
    n = max(len(pred_ids), len(full_ids))
    if n == 0:
        return 1.0
    same = sum(a == b for a, b in zip(pred_ids, full_ids, strict=False))
    return same / n


@dataclass(frozen=True)
class Metric:
    """A named metric and what it reads (``kind``): ``answer`` -> ``fn(prediction_text,
    references)``, ``agreement`` -> ``fn(prediction_ids, full_config_ids)``. Build one with
    :func:`answer_metric` or :func:`agreement_metric`."""

    name: str
    kind: MetricKind
    fn: Callable[..., float]

    def __post_init__(self) -> None:
        if self.kind not in METRIC_KINDS:
            raise ValueError(f"metric kind must be one of {METRIC_KINDS}, got {self.kind!r}")
        if not callable(self.fn):
            raise TypeError(f"metric {self.name!r}: fn must be callable, got {self.fn!r}")

    @property
    def needs_answers(self) -> bool:
        """Whether every request needs reference answers (answer metrics)."""
        return self.kind == "answer"

    @property
    def needs_full_config_ids(self) -> bool:
        """Whether the caller must generate the full configuration's tokens for the same
        request (agreement metrics)."""
        return self.kind == "agreement"

    def score(
        self,
        *,
        prediction_text: str,
        references: str | Sequence[str] | None,
        prediction_ids: Sequence[int],
        full_config_ids: Sequence[int] | None,
    ) -> float:
        """The score of one generation, checked to lie in [0, 1]: the metric gets the two
        values its kind reads. ``full_config_ids`` may be ``None`` only for answer metrics."""
        if self.kind == "answer":
            q = float(self.fn(prediction_text, references))
        else:
            if full_config_ids is None:
                raise ValueError(
                    f"metric {self.name!r} compares with the full configuration's tokens for "
                    "the same request: full_config_ids is required"
                )
            q = float(self.fn(prediction_ids, full_config_ids))
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"metric {self.name} returned {q}, outside [0, 1]")
        return q


def _check_arity(fn: Callable[..., float], kind: MetricKind) -> None:
    """A custom function that cannot take its kind's two positional arguments is refused now,
    not at its first call mid-run."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):  # builtins without a signature: trust them
        return
    try:
        sig.bind(None, None)
    except TypeError as e:
        reads = (
            "(prediction_text, references)"
            if kind == "answer"
            else "(prediction_ids, full_config_ids)"
        )
        raise TypeError(
            f"an {kind} metric is called as fn{reads}; "
            f"{getattr(fn, '__name__', fn)!r} cannot be ({e})"
        ) from None


def answer_metric(fn: AnswerFn, name: str | None = None) -> Metric:
    """An answer metric: ``fn(prediction_text, references) -> float`` in [0, 1]."""
    _check_arity(fn, "answer")
    return Metric(name or getattr(fn, "__name__", "custom"), "answer", fn)


def agreement_metric(fn: AgreementFn, name: str | None = None) -> Metric:
    """An agreement metric: ``fn(prediction_ids, full_config_ids) -> float`` in [0, 1]."""
    _check_arity(fn, "agreement")
    return Metric(name or getattr(fn, "__name__", "custom"), "agreement", fn)


METRICS: dict[str, Metric] = {
    "exact_match": answer_metric(exact_match),
    "vqa": answer_metric(vqa_accuracy, "vqa"),
    "textvqa": answer_metric(textvqa_accuracy, "textvqa"),
    "anls": answer_metric(anls),
    "relaxed_accuracy": answer_metric(relaxed_accuracy),
    "chartqapro": answer_metric(chartqapro_accuracy, "chartqapro"),
    "mmmu": answer_metric(mmmu_accuracy, "mmmu"),
    "multiple_choice": answer_metric(multiple_choice),
    "vqa_normalized": answer_metric(vqa_accuracy_normalized, "vqa_normalized"),
    "anls_paper": answer_metric(anls_paper),
    "relaxed_accuracy_paper": answer_metric(relaxed_accuracy_paper),
    "agreement": agreement_metric(agreement),
}

#: Dataset name (lower-case, letters and digits only) prefix -> its reference metric; the
#: first matching prefix wins, so "chartqapro" comes before "chartqa".
_DATASET_METRICS: tuple[tuple[str, str], ...] = (
    ("vqav2", "vqa"),
    ("okvqa", "vqa"),
    ("textvqa", "textvqa"),
    ("vizwiz", "textvqa"),
    ("docvqa", "anls"),
    ("infographicvqa", "anls"),
    ("infovqa", "anls"),
    ("chartqapro", "chartqapro"),
    ("chartqa", "relaxed_accuracy"),
    ("mmmu", "mmmu"),
    ("ai2d", "multiple_choice"),
    ("scienceqa", "multiple_choice"),
    ("mmbench", "multiple_choice"),
)


def metric_for_dataset(name: str) -> str:
    """The reference metric of a dataset, from its name: VQAv2 / OK-VQA -> ``vqa``, TextVQA /
    VizWiz -> ``textvqa``, DocVQA / InfographicVQA -> ``anls``, ChartQA ->
    ``relaxed_accuracy``, ChartQAPro -> ``chartqapro``, MMMU -> ``mmmu``, AI2D / ScienceQA /
    MMBench -> ``multiple_choice``, anything else -> ``exact_match``.

    Case, punctuation and a hub owner are ignored and the name may carry a suffix:
    "lmms-lab/VQAv2", "vqa_v2", "TextVQA-val", "ScienceQA-IMG", "MMBench_DEV_EN" all match.
    """
    if not isinstance(name, str):
        raise TypeError(f"a dataset name must be a str, got {type(name).__name__}")
    key = re.sub(r"[^a-z0-9]", "", name.rsplit("/", 1)[-1].lower())
    for prefix, metric in _DATASET_METRICS:
        if key.startswith(prefix):
            return metric
    return "exact_match"


def resolve_metric(
    metric: str | Metric | AnswerFn, have_answers: bool, dataset: str | None = None
) -> tuple[str, Metric]:
    """``(name, metric)`` for a metric name, a :class:`Metric`, or a plain function (taken as
    an answer metric, ``fn(prediction_text, references)``; wrap a token comparison with
    :func:`agreement_metric`).

    ``auto``: with answers, the dataset's standard metric when ``dataset`` names it
    (:func:`metric_for_dataset`), else exact match; without answers, agreement (a proxy).
    Every answer metric needs answers (``ValueError`` without them); ``agreement`` does not.
    """
    if isinstance(metric, Metric) or callable(metric):
        m = metric if isinstance(metric, Metric) else answer_metric(metric)
        if m.needs_answers and not have_answers:
            raise ValueError(f"metric {m.name!r} needs an answer for every sample")
        return m.name, m
    if metric == "auto":
        if not have_answers:
            metric = "agreement"
        else:
            metric = metric_for_dataset(dataset) if dataset else "exact_match"
    if metric not in METRICS:
        raise ValueError(
            f"unknown metric {metric!r}; choose auto, {', '.join(METRICS)} or pass a callable"
        )
    m = METRICS[metric]
    if m.needs_answers and not have_answers:
        raise ValueError(f"metric {metric!r} needs an answer for every sample")
    return metric, m
