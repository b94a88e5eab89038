import hashlib
import hmac

import pytest

from healthcare_assets.domain.privacy import hmac_pads, pseudonymise
from healthcare_assets.settings import ConfigurationError, pseudonymisation_key
from healthcare_assets.transforms.common import pseudonymise as pseudonymise_column


def test_python_pseudonym_is_rfc2104_hmac_sha256():
    key = b"secret"
    assert pseudonymise("MCD000000001", key) == hmac.new(key, b"MCD000000001", hashlib.sha256).hexdigest()
    assert pseudonymise("MCD000000001", key) != pseudonymise("MCD000000001", b"other")


@pytest.mark.parametrize("key", [b"k", b"a" * 64, b"long-key-" * 20, "clé-ünïcode".encode()])
def test_spark_sql_hmac_equals_python_hmac(spark, key):
    values = ["MCD000000001", "MCD123456789", "", "Ünïcødé name"]
    frame = spark.createDataFrame([(v,) for v in values], "value string")
    rows = frame.select("value", pseudonymise_column("value", key).alias("pseudonym")).collect()
    assert {r["value"]: r["pseudonym"] for r in rows} == {v: pseudonymise(v, key) for v in values}


def test_empty_key_is_refused():
    with pytest.raises(ValueError):
        hmac_pads(b"")


def test_local_environment_has_a_development_key_but_deployed_ones_refuse_to_start():
    assert pseudonymisation_key("local", environ={})
    assert pseudonymisation_key("prod", environ={"PSEUDONYMISATION_KEY": "s3cret"}) == b"s3cret"
    with pytest.raises(ConfigurationError, match="PSEUDONYMISATION_KEY is not set"):
        pseudonymisation_key("prod", environ={})
