"""MLflow tracking and model registry: a local SQLite store by default, the Databricks workspace when deployed.

One resource owns the URIs so assets never touch MLflow's global state
themselves. Registry aliases carry the champion/challenger state:
``challenger`` is set on every newly registered version, ``champion`` moves
only through `promote` (called by the governance assets once every gate passed).
"""

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import dagster as dg

CHAMPION = "champion"
CHALLENGER = "challenger"


class MlflowResource(dg.ConfigurableResource):
    """Where runs and registered models live; `experiment_root` prefixes experiment names (Databricks needs a path)."""

    tracking_uri: str
    registry_uri: str | None = None
    experiment_root: str = "/healthcare_assets"
    # `catalog.schema` prefixed to every registered model name: a Unity Catalog registry (`databricks-uc`)
    # only knows three-level names `catalog.schema.model`; None keeps the plain name (local, workspace registry).
    model_namespace: str | None = None

    # --- tracking -----------------------------------------------------------------
    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._activate()

    def _activate(self) -> None:
        import mlflow

        local_dir = self.local_directory()
        if local_dir is not None:
            local_dir.mkdir(parents=True, exist_ok=True)
            # Parallel training steps are separate processes: only one may create the SQLite schema.
            with open(local_dir / ".init.lock", "w") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                mlflow.set_tracking_uri(self.tracking_uri)
                mlflow.tracking.MlflowClient(self.tracking_uri).search_experiments(max_results=1)
        mlflow.set_tracking_uri(self.tracking_uri)
        # always set: MLflow keeps the registry URI process-wide, and one left by earlier code must not be used
        mlflow.set_registry_uri(self.registry_uri or self.tracking_uri)

    def local_directory(self) -> Path | None:
        """The folder of a local SQLite store (artifacts are kept beside it), or None for a remote store."""
        parsed = urlparse(self.tracking_uri)
        if parsed.scheme != "sqlite":
            return None
        return Path(self.tracking_uri.removeprefix("sqlite:///")).parent

    def client(self):
        from mlflow.tracking import MlflowClient

        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.registry_uri)

    def experiment_id(self, name: str) -> str:
        """Get or create the experiment `<experiment_root>/<name>`; local artifacts go under the store's folder."""
        full_name = f"{self.experiment_root.rstrip('/')}/{name}"
        client = self.client()
        existing = client.get_experiment_by_name(full_name)
        if existing is not None:
            return existing.experiment_id
        local_dir = self.local_directory()
        location = (local_dir / "artifacts" / name).as_uri() if local_dir is not None else None
        try:
            return client.create_experiment(full_name, artifact_location=location)
        except Exception:  # another process created it first
            existing = client.get_experiment_by_name(full_name)
            if existing is None:
                raise
            return existing.experiment_id

    @contextlib.contextmanager
    def start_run(self, experiment: str, run_name: str, tags: dict[str, str] | None = None) -> Iterator:
        """An MLflow run in `experiment`; ended (FAILED on error) when the block exits."""
        import mlflow

        self._activate()
        with mlflow.start_run(experiment_id=self.experiment_id(experiment), run_name=run_name, tags=tags) as run:
            yield run

    # --- registry (every `name` below is the model's short name; the namespace is added here) ------------
    def registered_name(self, name: str) -> str:
        """The name the registry knows the model by: `catalog.schema.model` in Unity Catalog."""
        return f"{self.model_namespace}.{name}" if self.model_namespace else name

    def alias_uri(self, name: str, alias: str) -> str:
        """`models:/<registered name>@<alias>`, for `mlflow.pyfunc.load_model`."""
        return f"models:/{self.registered_name(name)}@{alias}"

    def register_challenger(self, model_uri: str, name: str, tags: dict[str, str] | None = None):
        """Registers a new version of `name` and points the `challenger` alias at it."""
        import mlflow

        self._activate()
        version = mlflow.register_model(model_uri, self.registered_name(name), tags=tags)
        self.client().set_registered_model_alias(self.registered_name(name), CHALLENGER, version.version)
        return version

    def version_with_alias(self, name: str, alias: str):
        """The model version an alias points to, or None when the model or alias does not exist yet."""
        from mlflow.exceptions import MlflowException

        try:
            return self.client().get_model_version_by_alias(self.registered_name(name), alias)
        except MlflowException:
            return None

    def promote(self, name: str, version: str) -> None:
        """Moves the `champion` alias to `version` (the previous champion stays registered)."""
        self.client().set_registered_model_alias(self.registered_name(name), CHAMPION, version)


def pinned_requirements(*distributions: str) -> list[str]:
    """`name==version` of installed distributions, for `log_model(pip_requirements=...)`.

    Passing them explicitly skips MLflow's requirement inference, which imports
    the model in a subprocess and costs ~10 s per logged model.
    """
    from importlib.metadata import version

    return [f"{name}=={version(name)}" for name in distributions]
