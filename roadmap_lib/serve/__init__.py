"""Serving a zoo model over HTTP (chapter 26): an OpenAI-style completions API with streaming,
dynamic batching, request validation, a bounded queue, health and metrics, graceful shutdown.

- :mod:`.schemas`: the request/response bodies and their validation;
- :mod:`.batcher`: the bounded queue and the batcher task (continuous batching);
- :mod:`.app`: the FastAPI app;
- :mod:`.server`: load a zoo model, run the app in a thread, the offline reference answer,
  and ``python -m roadmap_lib serve NAME``.
"""

from .app import create_app
from .batcher import Batcher, Job, QueueFull, ShuttingDown
from .server import main, reference_completion, run_async, running_server, zoo_model

__all__ = ["Batcher", "Job", "QueueFull", "ShuttingDown", "create_app", "main",
           "reference_completion", "run_async", "running_server", "zoo_model"]
