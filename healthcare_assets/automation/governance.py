"""The Unity Catalog governance job: creates the schemas and volumes, applies the grants, and comments and tags
(PHI) the tables written so far; rerun after the first pipeline run documents the rest."""

import dagster as dg

from healthcare_assets.domain.grants import governance_statements, table_docs
from healthcare_assets.resources.databricks import SPARK_STEP_LAUNCHER
from healthcare_assets.settings import Settings

GRANTS_JOB = "unity_catalog_grants"


def deployment_jobs(settings: Settings) -> list[dg.JobDefinition]:
    """Jobs that exist only where there is a Unity Catalog catalog to govern (deployed environments)."""
    catalog = settings.catalog
    if catalog is None:
        return []
    principals = settings.profile.principals

    @dg.op(
        name="apply_unity_catalog_grants",
        # runs on the cluster like every Spark step: the grants need the workspace's SQL
        required_resource_keys={"lakehouse", SPARK_STEP_LAUNCHER},
        description=f"Creates the schemas and volumes of {catalog}, applies the GRANTs, and COMMENTs / SET TAGS "
        "on every table that exists.",
    )
    def apply_unity_catalog_grants(context: dg.OpExecutionContext) -> dg.Output[int]:
        spark = context.resources.lakehouse.spark.get_session()
        tables = {f"{doc.schema}.{doc.table}" for doc in table_docs()}
        existing = {table for table in tables if spark.catalog.tableExists(f"{catalog}.{table}")}
        statements = governance_statements(catalog, principals, existing)
        if tables - existing:
            context.log.info(f"not written yet, documented by a later run: {', '.join(sorted(tables - existing))}")
        for number, statement in enumerate(statements, start=1):
            spark.sql(statement)
            if number % 20 == 0:
                context.log.info(f"applied {number}/{len(statements)} governance statements")
        grants = [s for s in statements if s.startswith("GRANT")]
        return dg.Output(
            len(statements),
            metadata={
                "catalog": dg.MetadataValue.text(catalog),
                "grants": dg.MetadataValue.md("\n".join(f"- `{s}`" for s in grants)),
                "statements": dg.MetadataValue.int(len(statements)),
                "tables_documented": dg.MetadataValue.int(len(existing)),
                "tables_not_written_yet": dg.MetadataValue.json(sorted(tables - existing)),
            },
        )

    @dg.job(
        name=GRANTS_JOB,
        description="Declarative Unity Catalog governance: grants per role, table comments, PHI column tags.",
        tags={"team": "data-engineering"},
    )
    def unity_catalog_grants():
        apply_unity_catalog_grants()

    return [unity_catalog_grants]
