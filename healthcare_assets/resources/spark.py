"""Spark sessions for the three engines, chosen in one place.

* ``sail``: an embedded Sail Spark Connect server on a free loopback port, one
  per process, stopped at exit; the fast local default.
* ``classic``: local JVM Spark with the delta-spark jars, the engine Databricks
  runs, for fidelity tests.
* ``databricks``: the session of the cluster the step runs on.
"""

import atexit
import contextlib
import glob
import os
import shutil
import sys
import tempfile
import threading
from pathlib import Path

import dagster as dg
from pyspark.sql import SparkSession

from healthcare_assets.settings import ENGINES, ConfigurationError

_LOCK = threading.Lock()
_SESSIONS: dict[str, SparkSession] = {}
_SAIL_SERVER = None
_CHECKPOINT_DIR: str | None = None

# Shared by every engine: timestamps are stored and compared in UTC.
_COMMON_CONF = {"spark.sql.session.timeZone": "UTC"}


def _start_sail_server():
    global _SAIL_SERVER, _CHECKPOINT_DIR
    if _SAIL_SERVER is None:
        os.environ.setdefault("RUST_LOG", "error")
        # localCheckpoint() (parse a landing file once, write it to two tables) needs a place on disk
        _CHECKPOINT_DIR = tempfile.mkdtemp(prefix="sail-checkpoints-")
        os.environ["SAIL_EXECUTION__CHECKPOINT__PATH"] = Path(_CHECKPOINT_DIR).as_uri()
        from pysail.spark import SparkConnectServer

        try:  # the Rust server reports config, bind and runtime errors from both calls
            server = SparkConnectServer("127.0.0.1", 0)
            server.start(background=True)
        except Exception as error:
            raise RuntimeError(f"the embedded Sail Spark server failed to start: {error}") from error
        _SAIL_SERVER = server
        atexit.register(stop_all_sessions)
    return _SAIL_SERVER


def _sail_session(shuffle_partitions: int) -> SparkSession:
    host, port = _start_sail_server().listening_address
    builder = SparkSession.builder.remote(f"sc://{host}:{port}")
    for key, value in {**_COMMON_CONF, "spark.sql.shuffle.partitions": str(shuffle_partitions)}.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


def delta_jars(jars_dir: str) -> list[str]:
    jars = sorted(glob.glob(str(Path(jars_dir) / "*.jar")))
    if not jars:
        raise ConfigurationError(
            f"no Delta jars in {jars_dir}: run `make jars` (Maven fetches them from Maven Central)"
        )
    return jars


def _classic_session(shuffle_partitions: int, jars_dir: str) -> SparkSession:
    # Python workers must run this interpreter (the project's virtualenv), not whatever is first on PATH.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = (
        SparkSession.builder.master("local[*]")
        .appName("healthcare_assets")
        .config("spark.jars", ",".join(delta_jars(jars_dir)))
        .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
        .config("spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog")
        .config("spark.sql.shuffle.partitions", str(shuffle_partitions))
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.memory", "4g")
    )
    for key, value in _COMMON_CONF.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    return session


def _cluster_session() -> SparkSession:
    session = SparkSession.getActiveSession()
    return session or SparkSession.builder.getOrCreate()


def get_session(engine: str, shuffle_partitions: int = 4, jars_dir: str = ".jars") -> SparkSession:
    """The process-wide session of an engine, created on first use."""
    if engine not in ENGINES:
        raise ConfigurationError(f"spark engine {engine!r} is not one of {', '.join(ENGINES)}")
    with _LOCK:
        session = _SESSIONS.get(engine)
        if session is None:
            if engine == "sail":
                session = _sail_session(shuffle_partitions)
            elif engine == "classic":
                session = _classic_session(shuffle_partitions, jars_dir)
            else:
                session = _cluster_session()
            _SESSIONS[engine] = session
        return session


def stop_all_sessions() -> None:
    global _SAIL_SERVER, _CHECKPOINT_DIR
    with _LOCK:
        for session in _SESSIONS.values():
            with contextlib.suppress(Exception):  # stopping at exit must not raise
                session.stop()
        _SESSIONS.clear()
        if _SAIL_SERVER is not None:
            _SAIL_SERVER.stop()
            _SAIL_SERVER = None
        if _CHECKPOINT_DIR is not None:
            shutil.rmtree(_CHECKPOINT_DIR, ignore_errors=True)
            _CHECKPOINT_DIR = None


_CHECKPOINT_DIR: str | None = None


class SparkResource(dg.ConfigurableResource):
    """Gives assets a SparkSession on the configured engine."""

    engine: str = "sail"
    shuffle_partitions: int = 4
    jars_dir: str = ".jars"

    def get_session(self) -> SparkSession:
        return get_session(self.engine, self.shuffle_partitions, self.jars_dir)
