"""The evaluation callbacks: each scores on the data module's test split during training (the
schedule, baseline and summary line they share: :class:`EvaluationCallback`)."""

from contrast.eval.callbacks.base import EvaluationCallback
from contrast.eval.callbacks.knn import KNNCallback
from contrast.eval.callbacks.retrieval import RetrievalCallback

# name -> callback (configs name them by class path: contrast.eval.KNNCallback). A new evaluation
# is one file with an EvaluationCallback and one line here; the run's summary line takes its figure.
EVAL_CALLBACKS: dict[str, type[EvaluationCallback]] = {
    "knn": KNNCallback,
    "retrieval": RetrievalCallback,
}

__all__ = ["EVAL_CALLBACKS", "EvaluationCallback", "KNNCallback", "RetrievalCallback"]
