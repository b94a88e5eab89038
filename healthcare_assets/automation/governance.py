"""The Unity Catalog governance job: applies the environment's grants, table comments and PHI tags."""

import dagster as dg

from healthcare_assets.domain.grants import governance_statements
from healthcare_assets.resources.databricks import SPARK_STEP_LAUNCHER
from healthcare_assets.settings import Settings

GRANTS_JOB = "unity_catalog_grants"


def deployment_jobs(settings: Settings) -> list[dg.JobDefinition]:
    """Jobs that exist only where there is a Unity Catalog catalog to govern (deployed environments)."""
    catalog = settings.catalog
    if catalog is None:
        return []
    statements = governance_statements(catalog, settings.profile.principals)

    @dg.op(
        name="apply_unity_catalog_grants",
        # runs on the cluster like every Spark step: the grants need the workspace's SQL
        required_resource_keys={"lakehouse", SPARK_STEP_LAUNCHER},
        description=f"Applies {len(statements)} GRANT / COMMENT / SET TAGS statements to {catalog}.",
    )
    def apply_unity_catalog_grants(context: dg.OpExecutionContext) -> dg.Output[int]:
        spark = context.resources.lakehouse.spark.get_session()
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
