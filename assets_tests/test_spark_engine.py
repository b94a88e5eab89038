"""The embedded engine: one Sail Spark Connect server per process on a loopback port, stopped cleanly."""

import subprocess
import sys
import textwrap

import pytest

from healthcare_assets.resources.spark import SparkResource, delta_jars, get_session
from healthcare_assets.settings import ConfigurationError

SCRIPT = textwrap.dedent(
    """
    import socket
    from healthcare_assets.resources import spark as engine

    first = engine.get_session("sail")
    assert engine.get_session("sail") is first  # one session per process
    host, port = engine._SAIL_SERVER.listening_address
    assert host == "127.0.0.1"
    assert first.range(5).count() == 5
    checkpoints = engine._CHECKPOINT_DIR
    engine.stop_all_sessions()
    with socket.socket() as probe:  # the port is closed after shutdown
        assert probe.connect_ex((host, port)) != 0
    import os
    assert not os.path.exists(checkpoints)
    second = engine.get_session("sail")  # and a new server starts on demand
    assert second.range(3).count() == 3
    print("ok", port)
    """
)


def test_server_starts_on_loopback_is_reused_and_stops_cleanly():
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("ok ")


def test_resource_gives_the_process_session(spark):
    assert SparkResource(engine="sail").get_session() is spark
    assert spark.conf.get("spark.sql.session.timeZone") == "UTC"


def test_unknown_engine_is_refused():
    with pytest.raises(ConfigurationError, match="not one of"):
        get_session("duckdb")


def test_classic_engine_without_jars_says_how_to_fetch_them(tmp_path):
    with pytest.raises(ConfigurationError, match="no Delta jars.*make jars"):
        delta_jars(str(tmp_path))
