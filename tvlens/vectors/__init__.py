"""Task vectors: one :class:`TaskVector` type and every method that makes one."""

from tvlens.vectors.bench import METHODS, Bench, Method, register_method
from tvlens.vectors.compare import Comparison, compare
from tvlens.vectors.function import FunctionVectorResult, function_vector
from tvlens.vectors.head_weighted import HeadWeightedResult, head_weighted_task_vector
from tvlens.vectors.learned import (
    LearnConfig,
    LearnResult,
    learn_task_vector,
    learn_task_vectors,
    learn_task_vectors_many,
)
from tvlens.vectors.task_vector import Site, TaskVector
from tvlens.vectors.vanilla import LayerSweep, VanillaResult, query_states, vanilla_task_vector

__all__ = [
    "METHODS",
    "Bench",
    "Method",
    "register_method",
    "Comparison",
    "compare",
    "FunctionVectorResult",
    "HeadWeightedResult",
    "LayerSweep",
    "LearnConfig",
    "LearnResult",
    "Site",
    "TaskVector",
    "VanillaResult",
    "function_vector",
    "head_weighted_task_vector",
    "learn_task_vector",
    "learn_task_vectors",
    "learn_task_vectors_many",
    "query_states",
    "vanilla_task_vector",
]
