"""ICL task families and the prompts they produce (:class:`ICLBatch`)."""

from tvlens.tasks.base import TASK_REGISTRY, ContentBlock, ICLBatch, Task, register_task, task_from_dict
from tvlens.tasks.formal import HMMMixture, RegularLanguages, SequenceTask
from tvlens.tasks.metric import Accuracy, Metric, SquaredError, metric_for, metric_named
from tvlens.tasks.regression import (
    DecisionTreeRegression,
    LinearRegression,
    RegressionTask,
    ReLUNetRegression,
    SinusoidRegression,
    SparseLinearRegression,
)
from tvlens.tasks.splits import Splits
from tvlens.tasks.symbolic import ModularAffine, PermutationMixture, SymbolicTask, TokenOffset
from tvlens.tasks.text import TextTasks, WordPairs, builtin_tasks, word_pairs_from_csv

__all__ = [
    "TASK_REGISTRY",
    "Accuracy",
    "Metric",
    "SquaredError",
    "metric_for",
    "metric_named",
    "DecisionTreeRegression",
    "HMMMixture",
    "RegularLanguages",
    "SequenceTask",
    "ContentBlock",
    "ICLBatch",
    "LinearRegression",
    "ModularAffine",
    "PermutationMixture",
    "RegressionTask",
    "ReLUNetRegression",
    "SinusoidRegression",
    "SparseLinearRegression",
    "Splits",
    "SymbolicTask",
    "Task",
    "TextTasks",
    "WordPairs",
    "builtin_tasks",
    "word_pairs_from_csv",
    "TokenOffset",
    "register_task",
    "task_from_dict",
]
