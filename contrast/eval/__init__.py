"""Evaluation of frozen encoders."""

from contrast.eval.features import extract_features
from contrast.eval.knn import KNNEvaluator, knn_accuracy

__all__ = ["KNNEvaluator", "extract_features", "knn_accuracy"]
