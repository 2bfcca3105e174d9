"""d4rl_lite: offline-RL datasets generated locally, algorithms in PyTorch, honest benchmark tables.

D4RL-era code ports by changing an import::

    import d4rl_lite as d4rl
    env = d4rl.make("hopper-random-v0")
    data = d4rl.qlearning_dataset(env)
"""

from d4rl_lite.datasets.builders import build_dataset
from d4rl_lite.datasets.catalogue import catalogue, parse_dataset_name
from d4rl_lite.datasets.d4rl_compat import OfflineEnv, get_normalized_score, load_dataset, make, qlearning_dataset
from d4rl_lite.datasets.offline import OfflineDataset
from d4rl_lite.errors import (
    ChecksumMismatchError,
    D4RLLiteError,
    DatasetError,
    DatasetNotFoundError,
    ReferenceScoreUnavailable,
    TaskMismatchError,
    UnknownNameError,
    UserInputError,
)
from d4rl_lite.tasks import Task, get_task, list_tasks

__version__ = "0.1.0"

__all__ = [
    "ChecksumMismatchError",
    "D4RLLiteError",
    "DatasetError",
    "DatasetNotFoundError",
    "OfflineDataset",
    "OfflineEnv",
    "ReferenceScoreUnavailable",
    "Task",
    "TaskMismatchError",
    "UnknownNameError",
    "UserInputError",
    "build_dataset",
    "catalogue",
    "get_normalized_score",
    "get_task",
    "list_tasks",
    "load_dataset",
    "make",
    "parse_dataset_name",
    "qlearning_dataset",
]
