"""Training: losses, optimisers and schedules, steps, checkpoints, the loop, plots."""

from jaxpot.train.checkpoint import Checkpoints
from jaxpot.train.losses import squared_errors, weighted_loss
from jaxpot.train.metrics import ErrorMetrics
from jaxpot.train.optim import Plateau, ema_update, learning_rate, make_optimizer
from jaxpot.train.step import TrainState, make_eval_step, make_predict, make_train_step, make_train_steps
from jaxpot.train.trainer import TrainingOptions, TrainResult, evaluate, train

__all__ = [
    "Checkpoints",
    "ErrorMetrics",
    "Plateau",
    "TrainResult",
    "TrainState",
    "TrainingOptions",
    "ema_update",
    "evaluate",
    "learning_rate",
    "make_eval_step",
    "make_optimizer",
    "make_predict",
    "make_train_step",
    "make_train_steps",
    "squared_errors",
    "train",
    "weighted_loss",
]
