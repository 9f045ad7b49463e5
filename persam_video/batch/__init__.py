"""Many clips at once: a manifest of clips, resume markers, and executors (local processes or Ray).

``run_batch`` is behind ``persam-video batch``; ``run_clips`` (a list of clip tasks on an
executor, resumably) is also behind ``davis run``. See docs/batch.md.
"""
from .executors import Executor, LocalExecutor
from .manifest import ClipTask, load_manifest
from .run import EXECUTORS, BatchRun, make_executor, run_batch, run_clips
from .summary import Outcome
from .worker import WorkerSpec

__all__ = ["BatchRun", "ClipTask", "EXECUTORS", "Executor", "LocalExecutor", "Outcome", "WorkerSpec",
           "load_manifest", "make_executor", "run_batch", "run_clips"]
