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
from pydantic import Field
from pyspark.sql import SparkSession

from healthcare_assets.settings import ENGINES, ConfigurationError

_LOCK = threading.Lock()
_SESSIONS: dict[str, SparkSession] = {}
_SAIL_SERVER = None
# Per-process scratch folder: Sail's checkpoints, classic Spark's log configuration and warehouse.
_CHECKPOINT_DIR: str | None = None
# `make jars` puts the delta-spark jars here (the project root's .jars/, whatever the working directory).
DEFAULT_JARS_DIR = str(Path(__file__).resolve().parents[2] / ".jars")

# Shared by every engine: timestamps are stored and compared in UTC.
_COMMON_CONF = {"spark.sql.session.timeZone": "UTC"}

# Classic Spark logs only errors (the JVM's start-up banner and warnings are noise in run logs).
_CLASSIC_LOG4J = """\
rootLogger.level = error
rootLogger.appenderRef.stderr.ref = console
# the same level for the shell logger, else PySpark prints "Setting default log level" at start
logger.repl.name = org.apache.spark.repl.Main
logger.repl.level = error
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{HH:mm:ss} %p %c{1}: %m%n
"""


def _start_sail_server():
    global _SAIL_SERVER, _CHECKPOINT_DIR
    if _SAIL_SERVER is None:
        os.environ.setdefault("RUST_LOG", "error")
        # Sail drops a session idle for 20 minutes; a run's session must outlive a long training step.
        os.environ.setdefault("SAIL_SPARK__SESSION_TIMEOUT_SECS", str(7 * 24 * 3600))
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


def _classic_log_config() -> str:
    global _CHECKPOINT_DIR
    if _CHECKPOINT_DIR is None:
        _CHECKPOINT_DIR = tempfile.mkdtemp(prefix="spark-classic-")
        atexit.register(stop_all_sessions)
    path = Path(_CHECKPOINT_DIR) / "log4j2.properties"
    path.write_text(_CLASSIC_LOG4J)
    return str(path)


def _classic_session(shuffle_partitions: int, jars_dir: str) -> SparkSession:
    jars = delta_jars(jars_dir)
    # Python workers must run this interpreter (the project's virtualenv), not whatever is first on PATH.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    # Inherited from a parent process that ran Sail, this flag would make PySpark treat the classic session as
    # Spark Connect; this process runs no Connect session (get_session allows one engine per process).
    os.environ.pop("SPARK_CONNECT_MODE_ENABLED", None)
    # Loopback only (no "using a non-loopback address" warning, nothing listens on the network).
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    builder = (
        SparkSession.builder.master("local[*]")
        .appName("healthcare_assets")
        .config("spark.jars", ",".join(jars))
        # what Databricks configures for Delta: the SQL extension (MERGE, OPTIMIZE, VACUUM, DESCRIBE HISTORY)
        # and the Delta catalog (delta.`path` tables)
        .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
        .config("spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog")
        # a handful of partitions suits small local data on a few cores (the default 200 means 200 tiny tasks)
        .config("spark.sql.shuffle.partitions", str(shuffle_partitions))
        .config("spark.default.parallelism", str(shuffle_partitions))
        # Delta rebuilds a table's state from its log with this many tasks (default 50: slow for small tables)
        .config("spark.databricks.delta.snapshotPartitions", str(shuffle_partitions))
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.memory", "4g")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.driver.extraJavaOptions", f"-Dlog4j2.configurationFile=file:{_classic_log_config()}")
        # a local warehouse/metastore would otherwise land in the working directory
        .config("spark.sql.warehouse.dir", str(Path(_CHECKPOINT_DIR or tempfile.gettempdir()) / "warehouse"))
    )
    for key, value in _COMMON_CONF.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    return session


def _cluster_session() -> SparkSession:
    session = SparkSession.getActiveSession()
    return session or SparkSession.builder.getOrCreate()


def get_session(engine: str, shuffle_partitions: int = 4, jars_dir: str = DEFAULT_JARS_DIR) -> SparkSession:
    """The process-wide session of an engine, created on first use."""
    if engine not in ENGINES:
        raise ConfigurationError(f"spark engine {engine!r} is not one of {', '.join(ENGINES)}")
    with _LOCK:
        session = _SESSIONS.get(engine)
        running = [name for name in _SESSIONS if name != engine]
        if session is None and running:
            # PySpark allows either Spark Connect (Sail) or a classic JVM session in a process, not both
            raise ConfigurationError(
                f"this process already runs the {running[0]!r} Spark engine; use one engine per process "
                f"(start another process with SPARK_ENGINE={engine})"
            )
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


class SparkResource(dg.ConfigurableResource):
    """Gives assets a SparkSession on the configured engine."""

    engine: str = Field(
        default="sail",
        description="sail (embedded Spark Connect server), classic (local JVM Spark + delta-spark) "
        "or databricks (the cluster's session); SPARK_ENGINE sets it for the code location.",
    )
    shuffle_partitions: int = Field(default=4, description="spark.sql.shuffle.partitions of local engines.")
    jars_dir: str = Field(default=DEFAULT_JARS_DIR, description="Folder with the delta-spark jars (`make jars`).")

    def get_session(self) -> SparkSession:
        return get_session(self.engine, self.shuffle_partitions, self.jars_dir)
