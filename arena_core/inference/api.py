"""Prediction's public names: the inference engine, its scorer, ensembles and run planning.

Each concern lives in its own module, and its public names import from here too, as they did
before the split:

- :mod:`~arena_core.inference.scoring`: one model replica as a batch scorer that survives CUDA OOM (:class:`Scorer`);
- :mod:`~arena_core.inference.engine`: token-budget batches, one worker per replica, TTA and the
  time contract (:func:`predict_probs`, :class:`PredictionResult`), with its parts
  :mod:`~arena_core.inference.tta`, :mod:`~arena_core.inference.workers`,
  :mod:`~arena_core.inference.time_budget` and :mod:`~arena_core.inference.result`;
- :mod:`~arena_core.inference.fallback`: probabilities for the rows no model scored;
- :mod:`~arena_core.inference.encoding_cache`: the encoding cache and shorter re-encoding;
- :mod:`~arena_core.inference.ensemble`: several runs in turn, combined per row id;
- :mod:`~arena_core.inference.runtime_plan`: time budgets and run-time estimates (``arena plan``).
"""

from __future__ import annotations

from arena_core.inference.encoding_cache import encode_cached, make_reencoder
from arena_core.inference.encoding_cache import tokenizer_key as tokenizer_key
from arena_core.inference.engine import PredictionResult, predict_probs
from arena_core.inference.ensemble import EnsembleResult, Member, predict_ensemble, save_probs

# ``X as X``: a name outside ``__all__`` that lived here before the split, still importable from here.
from arena_core.inference.fallback import FALLBACK_TIE as FALLBACK_TIE
from arena_core.inference.result import PATHS as PATHS
from arena_core.inference.runtime_plan import KAGGLE_TIME_BUDGET_S as KAGGLE_TIME_BUDGET_S
from arena_core.inference.runtime_plan import (
    RuntimePlan,
    detect_time_budget,
    measure_throughput,
    parse_duration,
    plan_runtime,
)
from arena_core.inference.scoring import Scorer, is_oom
from arena_core.inference.time_budget import SAFETY as SAFETY
from arena_core.inference.time_budget import SHORTEN_STEPS as SHORTEN_STEPS
from arena_core.inference.tta import MIN_FILL as MIN_FILL
from arena_core.inference.tta import TTA_MODES as TTA_MODES

__all__ = [
    "EnsembleResult",
    "Member",
    "PredictionResult",
    "RuntimePlan",
    "Scorer",
    "detect_time_budget",
    "encode_cached",
    "is_oom",
    "make_reencoder",
    "measure_throughput",
    "parse_duration",
    "plan_runtime",
    "predict_ensemble",
    "predict_probs",
    "save_probs",
]
