"""Weekly Delta maintenance: compaction with Z-ordering, then VACUUM, for every table of the code location.

It is an op job, not an asset: it changes how tables are laid out, never their
rows, so it records an observation (files, bytes and versions before and after)
on each table asset instead of a new materialisation. The tables and their
Z-order columns come from the asset definitions (`zorder_by(...)` next to each
table), so a new table is maintained without touching this module.
"""

from collections.abc import Sequence

import dagster as dg
from pydantic import Field

from healthcare_assets.assets.common import ZORDER_BY_METADATA
from healthcare_assets.resources.delta import DEFAULT_RETAIN_HOURS, TableRef
from healthcare_assets.resources.lakehouse import LakehouseResource

DELTA_KIND = "delta"


class DeltaMaintenanceConfig(dg.Config):
    retain_hours: int = Field(
        default=DEFAULT_RETAIN_HOURS,
        description="VACUUM keeps files any version of the last this-many hours needs (time travel window).",
    )
    tables: list[str] = Field(
        default=[], description="Only these tables (schema/table, e.g. silver/medical_claims); empty means all."
    )


def delta_tables(assets: Sequence[dg.AssetsDefinition]) -> dict[dg.AssetKey, tuple[str, ...]]:
    """Every Delta table asset with its declared Z-order columns (empty: compaction only)."""
    tables = {}
    for asset in assets:
        for spec in asset.specs:
            if DELTA_KIND in spec.kinds:
                declared = spec.metadata.get(ZORDER_BY_METADATA)
                tables[spec.key] = tuple(c.strip() for c in declared.split(",")) if declared else ()
    return dict(sorted(tables.items(), key=lambda item: item[0].to_user_string()))


def _selected(tables: dict[dg.AssetKey, tuple[str, ...]], names: list[str]) -> dict[dg.AssetKey, tuple[str, ...]]:
    if not names:
        return tables
    by_name = {key.to_user_string(): key for key in tables}
    unknown = sorted(set(names) - set(by_name))
    if unknown:
        raise dg.Failure(f"unknown tables {unknown}: choose from {sorted(by_name)}")
    return {by_name[name]: tables[by_name[name]] for name in names}


def build_delta_maintenance_job(assets: Sequence[dg.AssetsDefinition]) -> dg.JobDefinition:
    """The `delta_maintenance` job over the Delta tables among `assets` (the code location's table assets)."""
    all_tables = delta_tables(assets)

    @dg.op(description="OPTIMIZE (ZORDER BY the declared columns) and VACUUM every Delta table.")
    def optimize_and_vacuum_tables(
        context: dg.OpExecutionContext, config: DeltaMaintenanceConfig, lakehouse: LakehouseResource
    ) -> None:
        storage = lakehouse.storage()
        tables = _selected(all_tables, config.tables)
        for position, (key, zorder) in enumerate(tables.items(), start=1):
            ref = TableRef.from_path(key.path)
            if not storage.exists(ref):
                context.log.info(f"[{position}/{len(tables)}] {ref}: not materialised yet, skipped")
                continue
            before = storage.files(ref)
            optimized = storage.optimize(ref, zorder)
            vacuumed = storage.vacuum(ref, config.retain_hours)
            after = storage.files(ref)
            context.log.info(
                f"[{position}/{len(tables)}] {ref}: {before.files} -> {after.files} files, "
                f"{optimized.files_removed} compacted, {vacuumed} vacuumed"
            )
            context.log_event(
                dg.AssetObservation(
                    asset_key=key,
                    metadata={
                        "zorder_by": dg.MetadataValue.text(", ".join(zorder) or "(compaction only)"),
                        "files_before": dg.MetadataValue.int(before.files),
                        "files_after": dg.MetadataValue.int(after.files),
                        "bytes_before": dg.MetadataValue.int(before.bytes),
                        "bytes_after": dg.MetadataValue.int(after.bytes),
                        "version_before": dg.MetadataValue.int(before.version),
                        "version_after": dg.MetadataValue.int(after.version),
                        "files_compacted": dg.MetadataValue.int(optimized.files_removed),
                        "files_written": dg.MetadataValue.int(optimized.files_added),
                        "files_vacuumed": dg.MetadataValue.int(vacuumed),
                        "retain_hours": dg.MetadataValue.int(config.retain_hours),
                    },
                )
            )

    @dg.job(
        name="delta_maintenance",
        description="Compacts and Z-orders every Delta table, then VACUUMs files older than the retention window.",
    )
    def delta_maintenance_job():
        optimize_and_vacuum_tables()

    return delta_maintenance_job


def weekly_schedule(job: dg.JobDefinition) -> dg.ScheduleDefinition:
    """Sundays 04:00, after the 02:00 daily pipeline; off until turned on in the UI."""
    return dg.ScheduleDefinition(job=job, cron_schedule="0 4 * * 0", default_status=dg.DefaultScheduleStatus.STOPPED)
