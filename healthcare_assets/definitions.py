"""The code location: every asset, check, job and schedule, with the active environment's resources."""

from collections.abc import Iterable

import dagster as dg

from healthcare_assets import catalog
from healthcare_assets.assets import bronze, fraud, gold, landing, monitoring, outreach, risk, serving, silver
from healthcare_assets.assets import governance as governance_assets
from healthcare_assets.automation import governance, jobs, maintenance, sensors
from healthcare_assets.checks import fraud as fraud_checks
from healthcare_assets.checks import governance as governance_checks
from healthcare_assets.checks import promotion, quality
from healthcare_assets.checks import risk as risk_checks
from healthcare_assets.partitions import single_run_backfill
from healthcare_assets.resources.build import build_resources
from healthcare_assets.resources.databricks import launch_spark_steps, volume_directory_lister
from healthcare_assets.settings import Settings, load_settings


def build_definitions(settings: Settings) -> dg.Definitions:
    # Locally the landing feeds are generated; deployed, they arrive from the payer's systems.
    landing_assets = [landing.synthetic_landing_feeds] if settings.is_local else landing.LANDING_SPECS
    table_assets = with_single_run_backfills(
        dg.load_assets_from_modules(
            [bronze, silver, gold, fraud, risk, outreach, monitoring, governance_assets, serving]
        )
    )
    # every Spark asset and its checks go through the step launcher (in-process locally, Databricks deployed)
    assets, checks = launch_spark_steps(
        catalog.with_code_references([*landing_assets, *table_assets]),
        [
            *quality.quality_checks,
            *fraud_checks.fraud_checks,
            *promotion.fraud_promotion_checks,
            *risk_checks.risk_checks,
            *governance_checks.governance_checks,
        ],
    )
    # weekly OPTIMIZE ... ZORDER BY and VACUUM of every Delta table above
    maintenance_job = maintenance.build_delta_maintenance_job(table_assets)
    return dg.Definitions(
        assets=assets,
        asset_checks=checks,
        jobs=[*jobs.jobs, maintenance_job, *governance.deployment_jobs(settings)],
        schedules=[*jobs.build_schedules(settings.schedule_timezone), maintenance.weekly_schedule(maintenance_job)],
        sensors=sensors.build_sensors(settings.landing_root, landing_lister(settings)),
        resources=build_resources(settings),
        executor=executor(settings),
    )


def with_single_run_backfills(assets: Iterable[catalog.LoadedAsset]) -> list[dg.AssetsDefinition]:
    """A range of days is one run for every asset (Spark processes the range at once; the CLI requires it)."""
    definitions = []
    for a in assets:
        if not isinstance(a, dg.AssetsDefinition):
            raise TypeError(f"{a!r}: table modules define assets with @dg.asset or @dg.multi_asset only")
        definitions.append(
            a if a.backfill_policy is not None else a.with_attributes(backfill_policy=single_run_backfill)
        )
    return definitions


def landing_lister(settings: Settings) -> sensors.DirectoryLister:
    """Where the landing sensor looks: the local disk, or the landing volume through the Files API when deployed."""
    return volume_directory_lister() if settings.launches_steps_on_databricks else sensors.local_directory


def executor(settings: Settings) -> dg.ExecutorDefinition:
    if settings.profile.executor == "in_process":
        # Spark parallelises inside a step; one process keeps one embedded engine for the whole run.
        return dg.in_process_executor
    # deployed steps mostly wait for their Databricks run: several side by side unless the run config
    # picks `execution: {config: {in_process: {}}}` or its own `max_concurrent`
    limit = settings.profile.max_concurrent_steps

    def with_default_limit(config: dict) -> dict:
        multiprocess = config.get("multiprocess")
        if multiprocess is not None and not multiprocess.get("max_concurrent"):
            return {"multiprocess": {**multiprocess, "max_concurrent": limit}}
        return config

    return dg.multi_or_in_process_executor.configured(
        with_default_limit, config_schema=dg.multi_or_in_process_executor.config_schema.as_field()
    )


def load_definitions() -> dg.Definitions:
    """The code location for the environment the variables describe now (a code pointer target)."""
    return build_definitions(load_settings())


defs = load_definitions()
