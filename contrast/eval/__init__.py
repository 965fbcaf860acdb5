"""Evaluation of frozen encoders, and the callbacks that run it during training."""

from contrast.eval.callbacks import EVAL_CALLBACKS, EvaluationCallback, KNNCallback, RetrievalCallback
from contrast.eval.features import extract_features
from contrast.eval.knn import KNNEvaluator

__all__ = [
    "EVAL_CALLBACKS",
    "EvaluationCallback",
    "KNNCallback",
    "KNNEvaluator",
    "RetrievalCallback",
    "extract_features",
]
