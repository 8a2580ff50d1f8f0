"""Experiment tracking with MLflow (chapter 17), on a local SQLite store, never a server.

:class:`LocalTracking` opens (or creates) ``<root>/mlflow.db`` and ``<root>/artifacts`` and talks
to them through one ``mlflow.MlflowClient``: nothing global is set (no ``mlflow.set_tracking_uri``,
no environment variable of MLflow's store), so two stores can be open at once and closing one leaves
no trace. The one setting made on import: MLflow's usage telemetry is switched off
(``MLFLOW_DISABLE_TELEMETRY``, unless the reader set it), because importing mlflow would otherwise
start a thread that contacts MLflow's servers, and the book runs offline.
:meth:`LocalTracking.log_run` writes a finished run in one go (parameters, final metrics, a metric's
history by step, files as artifacts); :meth:`LocalTracking.best_run` asks the store, with
``search_runs``, for the run with the best value of a metric. The model registry:
:meth:`LocalTracking.register_version` records a run's model as a numbered version of a registered
model, tagged with the content hash of its weights; :meth:`LocalTracking.promote` points an alias
("production") at a version; :meth:`LocalTracking.version_for` reads it back.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # before mlflow is imported (see above)

from mlflow import MlflowClient  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402
from mlflow.entities import Metric, Param, RunStatus, RunTag  # noqa: E402

#: ``log_batch`` accepts at most 1000 metrics per call (MLflow's limit).
_BATCH = 1000


class LocalTracking:
    """An MLflow tracking store in the folder ``root`` (created if missing)."""

    def __init__(self, root: str | Path):
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.uri = f"sqlite:///{self.root / 'mlflow.db'}"
        self.client = MlflowClient(tracking_uri=self.uri)

    def experiment(self, name: str) -> str:
        """The id of experiment ``name``, created (artifacts under ``root/artifacts/name``) if new."""
        if not name or not isinstance(name, str):
            raise ValueError(f"name: expected a non-empty experiment name, got {name!r}")
        found = self.client.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        return self.client.create_experiment(name, artifact_location=(self.root / "artifacts" / name).as_uri())

    def log_run(self, experiment_id: str, run_name: str, *, params: Mapping[str, object] | None = None,
                metrics: Mapping[str, float] | None = None,
                history: Mapping[str, Iterable[tuple[int, float]]] | None = None,
                artifacts: Iterable[str | Path] = (), tags: Mapping[str, str] | None = None) -> str:
        """Log one finished run; return its id. ``params`` are stored as strings (MLflow's rule);
        ``metrics`` are final values (step 0); ``history`` maps a metric name to ``(step, value)``
        pairs; ``artifacts`` are local files copied into the run's artifact folder."""
        now = int(time.time() * 1000)
        run = self.client.create_run(experiment_id, run_name=run_name, tags=dict(tags or {}))
        run_id = run.info.run_id
        try:
            entries = [Metric(k, float(v), now, 0) for k, v in (metrics or {}).items()]
            for key, pairs in (history or {}).items():
                entries += [Metric(key, float(v), now, int(s)) for s, v in pairs]
            param_list = [Param(k, str(v)) for k, v in (params or {}).items()]
            self.client.log_batch(run_id, metrics=entries[:_BATCH], params=param_list,
                                  tags=[RunTag(k, str(v)) for k, v in (tags or {}).items()])
            for start in range(_BATCH, len(entries), _BATCH):
                self.client.log_batch(run_id, metrics=entries[start:start + _BATCH])
            for path in artifacts:
                path = Path(path)
                if not path.is_file():
                    raise FileNotFoundError(f"artifacts: {path} is not a file")
                self.client.log_artifact(run_id, str(path))
        except BaseException:
            self.client.set_terminated(run_id, RunStatus.to_string(RunStatus.FAILED))
            raise
        self.client.set_terminated(run_id, RunStatus.to_string(RunStatus.FINISHED))
        return run_id

    def runs(self, experiment_id: str, filter_string: str = "", order_by: list[str] | None = None) -> list:
        """Every run of the experiment matching ``filter_string`` (MLflow's search syntax, e.g.
        ``"params.method = 'replay'"``), as ``mlflow.entities.Run`` objects."""
        return list(self.client.search_runs([experiment_id], filter_string=filter_string,
                                            order_by=order_by, max_results=1000))

    def best_run(self, experiment_id: str, metric: str, *, lower_is_better: bool = True,
                 filter_string: str = ""):
        """The run with the lowest (or highest) final ``metric``, found by the store's
        ``search_runs`` ordering. Raises ``LookupError`` when no run has the metric."""
        order = f"metrics.`{metric}` {'ASC' if lower_is_better else 'DESC'}"
        runs = self.client.search_runs([experiment_id], filter_string=filter_string, order_by=[order],
                                       max_results=1000)
        runs = [r for r in runs if metric in r.data.metrics]
        if not runs:
            raise LookupError(f"metric: no run of experiment {experiment_id} logged {metric!r}")
        return runs[0]

    def history(self, run_id: str, metric: str) -> list[tuple[int, float]]:
        """``(step, value)`` pairs of a metric, in step order."""
        return sorted((m.step, m.value) for m in self.client.get_metric_history(run_id, metric))

    def artifact_names(self, run_id: str) -> list[str]:
        return sorted(f.path for f in self.client.list_artifacts(run_id))

    def register_version(self, name: str, run_id: str, *, sha256: str,
                         tags: Mapping[str, object] | None = None) -> str:
        """Register the model of run ``run_id`` as a new version of ``name`` (created if new), tagged
        ``sha256`` (the content hash of its weights) and ``tags``; return the version number."""
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise ValueError(f"sha256: expected 64 lower-case hex digits, got {sha256!r}")
        try:
            self.client.get_registered_model(name)
        except MlflowException:
            self.client.create_registered_model(name)
        run = self.client.get_run(run_id)
        version = self.client.create_model_version(
            name, source=run.info.artifact_uri, run_id=run_id,
            tags={"sha256": sha256, **{k: str(v) for k, v in (tags or {}).items()}})
        return str(version.version)

    def promote(self, name: str, version: str, alias: str = "production") -> None:
        """Point ``alias`` of registered model ``name`` at ``version`` (moving it from any other)."""
        self.client.set_registered_model_alias(name, alias, str(version))

    def version_for(self, name: str, alias: str = "production"):
        """The ``ModelVersion`` that ``alias`` points at; ``LookupError`` when it points nowhere."""
        try:
            return self.client.get_model_version_by_alias(name, alias)
        except MlflowException as err:
            raise LookupError(f"alias: registered model {name!r} has no version called {alias!r}") from err


__all__ = ["LocalTracking"]
