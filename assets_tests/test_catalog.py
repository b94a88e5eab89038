"""What the asset catalog shows: descriptions, tags, gates, code links, column docs and lineage, charts."""

import re
from datetime import date
from pathlib import Path

import dagster as dg
import pytest

from assets_tests.embedded_charts import embedded_chart
from assets_tests.pipeline import Pipeline
from healthcare_assets import catalog, charts
from healthcare_assets.assets import gold
from healthcare_assets.assets.landing import SyntheticDataConfig
from healthcare_assets.assets.monitoring import PSI_METRICS_KEY
from healthcare_assets.definitions import defs
from healthcare_assets.domain import drift
from healthcare_assets.domain.sources import SOURCES
from healthcare_assets.domain.synthetic import member_roster

DAY = date(2026, 1, 1)
# embedded chart images: pixels, whose base64 text spells short names by chance
EMBEDDED_IMAGE = re.compile(r"data:image/[a-z]+;base64,[A-Za-z0-9+/=]+")
PHI_COLUMNS = {column for source in SOURCES.values() for column in source.phi_columns}


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    pipeline = Pipeline(tmp_path_factory.mktemp("lakehouse"))
    result = pipeline.run(DAY)
    assert result.success
    pipeline.metadata = {
        e.asset_key: e.materialization.metadata for e in result.get_asset_materialization_events()
    }  # asset key -> metadata of its materialisation
    return pipeline


def test_every_asset_is_described_grouped_kinded_owned_and_linked_to_its_code():
    for spec in defs.resolve_all_asset_specs():
        assert spec.description and spec.group_name and spec.kinds and spec.owners, spec.key
        references = spec.metadata["dagster/code_references"].code_references
        assert references, spec.key
        for reference in references:
            lines = Path(reference.file_path).read_text().splitlines()
            assert 0 < reference.line_number <= len(lines), spec.key


def test_code_references_link_to_git_when_a_repository_url_is_known():
    linked = catalog.with_code_references(
        [gold.member_features], git_url="https://github.com/example/hc", git_branch="dev"
    )
    (spec,) = linked[0].specs
    (reference,) = spec.metadata["dagster/code_references"].code_references
    assert reference.url.startswith("https://github.com/example/hc/tree/dev/healthcare_assets/assets/gold.py#L")


def test_blocking_checks_are_marked_as_gates_and_warnings_as_warnings():
    graph = defs.resolve_asset_graph()
    for key in graph.asset_check_keys:
        check = graph.get_check_spec(key)
        assert check.metadata["gate"].startswith("blocking" if check.blocking else "warning"), key


def test_only_tables_holding_direct_identifiers_are_tagged_phi(pipeline):
    tagged = {spec.key for spec in defs.resolve_all_asset_specs() if spec.tags.get("phi") == "true"}
    for key, metadata in pipeline.metadata.items():
        if "dagster/column_schema" not in metadata:
            continue  # landing files, not tables
        columns = {column.name for column in metadata["dagster/column_schema"].schema.columns}
        holds_phi = bool(columns & PHI_COLUMNS) or key == dg.AssetKey(["bronze", "quarantine"])  # raw lines
        assert (key in tagged) == holds_phi, key


def test_every_column_of_every_table_is_described(pipeline):
    tables = {
        key: m["dagster/column_schema"].schema for key, m in pipeline.metadata.items() if "dagster/column_schema" in m
    }
    delta_tables = {spec.key for spec in defs.resolve_all_asset_specs() if "delta" in spec.kinds}
    assert set(tables) == delta_tables & set(pipeline.metadata)  # every materialised table reports its schema
    # governance: the audit log, written by the risk model's promotion
    assert {key.path[0] for key in tables} == {"bronze", "silver", "gold", "monitoring", "governance"}
    undescribed = {key.to_user_string(): [c.name for c in s.columns if not c.description] for key, s in tables.items()}
    assert {key: names for key, names in undescribed.items() if names} == {}


def test_column_lineage_names_real_columns_of_the_upstream_tables(pipeline):
    columns = {
        key: {column.name for column in m["dagster/column_schema"].schema.columns}
        for key, m in pipeline.metadata.items()
        if "dagster/column_schema" in m
    }
    with_lineage = {
        key: m["dagster/column_lineage"] for key, m in pipeline.metadata.items() if "dagster/column_lineage" in m
    }
    assert {key.path[0] for key in with_lineage} == {"silver", "gold"}
    assert len(with_lineage) == 4 + 1 + 2
    for key, lineage in with_lineage.items():
        deps = lineage.value.deps_by_column
        assert set(deps) <= columns[key], key
        assert len(deps) >= len(columns[key]) - 2, key  # all but bookkeeping columns at most
        for column, sources in deps.items():
            assert sources, (key, column)
            for source in sources:
                assert source.column_name in columns[source.asset_key], (key, column, source)
    claims = with_lineage[dg.AssetKey(["silver", "medical_claims"])].value.deps_by_column
    assert [(d.asset_key.to_user_string(), d.column_name) for d in claims["member_key"]] == [
        ("bronze/medical_claims", "member_id")
    ]


def test_quarantine_and_fraud_label_charts_are_embedded_pngs(pipeline):
    for key, name in (
        (["bronze", "quarantine"], "quarantined_chart"),
        (["landing", "fraud_labels"], "by_pattern_chart"),
    ):
        _, size = embedded_chart(pipeline.metadata[dg.AssetKey(key)][name])
        assert size == (600, 300)


def test_psi_metrics_chart_their_largest_psi_per_feature(pipeline):
    metadata = pipeline.metadata[PSI_METRICS_KEY]
    assert embedded_chart(metadata["psi_chart"]) == ("Largest PSI per feature over the run's days", (800, 350))
    # the trailing-history features are not gated while their history fills: the chart sets them apart
    assert "claim_rate_90d" in metadata["features_not_gated"].value
    assert (metadata["psi_warn"].value, metadata["psi_error"].value) == (drift.PSI_WARN, drift.PSI_ERROR)


def test_no_materialisation_metadata_holds_a_direct_identifier(pipeline):
    roster = member_roster(SyntheticDataConfig(**pipeline.synthetic).to_domain())
    identifiers = set(roster["member_id"]) | set(roster["last_name"]) | set(roster["street_address"])
    for key, metadata in pipeline.metadata.items():
        text = EMBEDDED_IMAGE.sub("", " ".join(str(value.value) for value in metadata.values()))
        assert not [identifier for identifier in identifiers if identifier in text], key


def test_bar_chart_of_grouped_values_is_a_png_of_the_requested_size():
    value = charts.bar_chart_markdown({"medical_claims": {"malformed": 3, "wrong_type": 1}, "immunizations": {}}, "t")
    assert embedded_chart(value) == ("t", (600, 300))


def test_figure_markdown_embeds_any_matplotlib_figure():
    figure, axes = charts.new_figure(4, 2)
    axes.plot([0, 1], [0, 1])
    assert embedded_chart(charts.figure_markdown(figure, "ROC")) == ("ROC", (400, 200))
