"""``ember.train``: the training loop (Trainer / fit), metrics and callbacks.

Example:
    >>> import ember
    >>> from ember.train import EarlyStopping, Trainer
    >>> model = ember.nn.Linear(4, 2)
    >>> opt = ember.optim.SGD(model.parameters(), lr=0.1)
    >>> trainer = Trainer(model, "cross_entropy", opt, metrics=["accuracy"],
    ...                   callbacks=[EarlyStopping(monitor="val_loss", patience=2)], verbose=0)
    >>> data = (ember.randn(32, 4), ember.randint(0, 2, (32,)))
    >>> len(trainer.fit(data, data, epochs=3)) <= 3
    True
"""

from .callbacks import (
    Callback,
    CallbackList,
    EarlyStopping,
    History,
    LRSchedulerCallback,
    ModelCheckpoint,
)
from .loggers import CSVLogger, LambdaCallback, LoggingCallback
from .metrics import Accuracy, Mean, Metric, TopKAccuracy, accuracy, get_metric, top_k_accuracy
from .progress import ProgressBar
from .trainer import Trainer, fit

__all__ = [
    "Trainer",
    "fit",
    "History",
    "Callback",
    "CallbackList",
    "ProgressBar",
    "EarlyStopping",
    "ModelCheckpoint",
    "LRSchedulerCallback",
    "CSVLogger",
    "LoggingCallback",
    "LambdaCallback",
    "Metric",
    "Accuracy",
    "TopKAccuracy",
    "Mean",
    "accuracy",
    "top_k_accuracy",
    "get_metric",
]
