"""The code location: every asset, check, job and schedule, with the active environment's resources."""

import dagster as dg

from healthcare_assets.assets import bronze, fraud, gold, landing, silver
from healthcare_assets.automation import jobs
from healthcare_assets.checks import fraud as fraud_checks
from healthcare_assets.checks import quality
from healthcare_assets.resources.build import build_resources
from healthcare_assets.settings import Settings, load_settings


def build_definitions(settings: Settings) -> dg.Definitions:
    # Locally the landing feeds are generated; deployed, they arrive from the payer's systems.
    landing_assets = [landing.synthetic_landing_feeds] if settings.is_local else landing.LANDING_SPECS
    return dg.Definitions(
        assets=[*landing_assets, *dg.load_assets_from_modules([bronze, silver, gold, fraud])],
        asset_checks=[*quality.quality_checks, *fraud_checks.fraud_checks],
        jobs=jobs.jobs,
        schedules=jobs.schedules,
        resources=build_resources(settings),
        # Spark parallelises inside a step; one process keeps one embedded engine for the whole run.
        executor=dg.in_process_executor,
    )


defs = build_definitions(load_settings())
