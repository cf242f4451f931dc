"""Training models from scratch: meta-ICL training with the optional task-vector-prompting (TVP) loss.

Training sits above :mod:`tvlens.interventions` and :mod:`tvlens.scoring` (its TVP loss injects a vector;
its periodic evaluation scores ICL, zero-shot and TVP mode) and below :mod:`tvlens.zoo`, which
trains and ships models with it.
"""

from tvlens.training.train import (
    TrainConfig,
    Trainer,
    TrainResult,
    answer_loss,
    evaluate_training,
    read_checkpoint,
    train,
    tvp_by_layer,
)

__all__ = ["TrainConfig", "TrainResult", "Trainer", "answer_loss", "evaluate_training", "read_checkpoint", "train",
           "tvp_by_layer"]
