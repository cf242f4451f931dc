"""ICL task families and the prompts they produce (:class:`ICLBatch`)."""

from tvlens.tasks.base import TASK_REGISTRY, ICLBatch, Task, register_task, task_from_dict
from tvlens.tasks.formal import HMMMixture, RegularLanguages, SequenceTask
from tvlens.tasks.regression import (
    DecisionTreeRegression,
    LinearRegression,
    RegressionTask,
    ReLUNetRegression,
    SinusoidRegression,
    SparseLinearRegression,
)
from tvlens.tasks.symbolic import ModularAffine, PermutationMixture, SymbolicTask, TokenOffset

__all__ = [
    "TASK_REGISTRY",
    "DecisionTreeRegression",
    "HMMMixture",
    "RegularLanguages",
    "SequenceTask",
    "ICLBatch",
    "LinearRegression",
    "ModularAffine",
    "PermutationMixture",
    "RegressionTask",
    "ReLUNetRegression",
    "SinusoidRegression",
    "SparseLinearRegression",
    "SymbolicTask",
    "Task",
    "TokenOffset",
    "register_task",
    "task_from_dict",
]
