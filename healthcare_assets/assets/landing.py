"""Landing zone: the daily feed files. Locally a seeded generator writes them."""

import time
from collections import Counter
from datetime import date

import dagster as dg

from healthcare_assets.assets.common import DATA_ENGINEERING, run_days
from healthcare_assets.charts import bar_chart_markdown
from healthcare_assets.domain.sources import FRAUD_LABELS_FOLDER, FRAUD_PATTERNS, SOURCES
from healthcare_assets.domain.synthetic import RISK_SCORES_FOLDER, SyntheticConfig, write_landing_day
from healthcare_assets.partitions import PARTITIONS_START, daily_partitions, single_run_backfill
from healthcare_assets.resources.lakehouse import LakehouseResource

LANDING_KEYS = {name: dg.AssetKey(["landing", name]) for name in SOURCES}
FRAUD_LABELS_KEY = dg.AssetKey(["landing", FRAUD_LABELS_FOLDER])
RISK_SCORES_KEY = dg.AssetKey(["landing", RISK_SCORES_FOLDER])


class SyntheticDataConfig(dg.Config):
    """Knobs of the synthetic feeds (defaults: 2,000 members, 400 claims a day, 3% labelled fraud, 1% bad lines)."""

    seed: int = 42
    num_members: int = 2_000
    num_providers: int = 150
    claims_per_day: int = 400
    rx_claims_per_day: int = 250
    immunizations_per_day: int = 40
    fraud_rate: float = 0.03
    bad_record_rate: float = 0.01
    drift_start: str | None = None
    drift_strength: float = 0.0
    bias_attribute: str | None = None
    bias_value: str | None = None
    bias_strength: float = 0.0

    def to_domain(self) -> SyntheticConfig:
        return SyntheticConfig(
            seed=self.seed,
            roster_date=PARTITIONS_START,
            num_members=self.num_members,
            num_providers=self.num_providers,
            claims_per_day=self.claims_per_day,
            rx_claims_per_day=self.rx_claims_per_day,
            immunizations_per_day=self.immunizations_per_day,
            fraud_rate=self.fraud_rate,
            bad_record_rate=self.bad_record_rate,
            drift_start=date.fromisoformat(self.drift_start) if self.drift_start else None,
            drift_strength=self.drift_strength,
            bias_group=(self.bias_attribute, self.bias_value) if self.bias_attribute and self.bias_value else None,
            bias_strength=self.bias_strength,
        )


def _landing_spec(key: dg.AssetKey, description: str, file_kind: str) -> dg.AssetSpec:
    return dg.AssetSpec(
        key,
        description=description,
        group_name="landing",
        kinds={file_kind},
        owners=DATA_ENGINEERING,
        tags={} if key == FRAUD_LABELS_KEY else {"phi": "true"},  # the risk file carries member ids
    )


LANDING_SPECS = [
    *[
        _landing_spec(LANDING_KEYS[name], source.description, "json" if source.file_format == "jsonl" else "csv")
        for name, source in SOURCES.items()
    ],
    _landing_spec(
        FRAUD_LABELS_KEY,
        "Confirmed fraud outcomes per claim (the generator's injected patterns): evaluation ground truth, never a feature.",
        "csv",
    ),
    _landing_spec(
        RISK_SCORES_KEY,
        "The payer's actuarial risk file (risk score 0-100, high-risk flag, expected annual cost per member): "
        "label of the member risk models, never a feature.",
        "csv",
    ),
]


@dg.multi_asset(
    name="synthetic_landing_feeds",
    specs=LANDING_SPECS,
    partitions_def=daily_partitions,
    backfill_policy=single_run_backfill,
)
def synthetic_landing_feeds(
    context: dg.AssetExecutionContext, config: SyntheticDataConfig, lakehouse: LakehouseResource
):
    """Writes each day's feed files with the seeded generator (local environment only)."""
    synthetic = config.to_domain()
    days = run_days(context)
    rows: Counter[str] = Counter()
    bad: dict[str, Counter[str]] = {name: Counter() for name in SOURCES}
    fraud: Counter[str] = Counter()
    started = time.monotonic()
    context.log.info(
        f"generating {len(days)} day(s) of feeds for {synthetic.num_members} members, "
        f"about {synthetic.claims_per_day} claims a day"
    )
    for number, day in enumerate(days, start=1):
        manifest = write_landing_day(synthetic, day, lakehouse.landing_root)
        rows.update(manifest.rows)
        for name, kinds in manifest.bad_rows.items():
            bad[name].update(kinds)
        fraud.update(manifest.fraud)
        elapsed = time.monotonic() - started
        context.log.info(
            f"landing day {number}/{len(days)} {day}: {sum(manifest.rows.values())} records written "
            f"({elapsed:.0f} s elapsed, about {elapsed / number * (len(days) - number):.0f} s to go)"
        )
    for name, key in LANDING_KEYS.items():
        yield dg.MaterializeResult(
            asset_key=key,
            metadata={
                "records": dg.MetadataValue.int(rows[name]),
                "injected_bad_records": dg.MetadataValue.json(dict(bad[name])),
                "days": dg.MetadataValue.int(len(days)),
                "location": dg.MetadataValue.path(f"{lakehouse.landing_root}/{name}"),
            },
        )
    yield dg.MaterializeResult(
        asset_key=FRAUD_LABELS_KEY,
        metadata={
            "labelled_claims": dg.MetadataValue.int(sum(fraud.values())),
            "by_pattern": dg.MetadataValue.json(dict(fraud)),
            "by_pattern_chart": bar_chart_markdown(
                {pattern: fraud[pattern] for pattern in FRAUD_PATTERNS}, "Labelled fraud by pattern", "claims"
            ),
        },
    )
    yield dg.MaterializeResult(
        asset_key=RISK_SCORES_KEY,
        metadata={
            "days": dg.MetadataValue.int(len(days)),
            "location": f"{lakehouse.landing_root}/{RISK_SCORES_FOLDER}",
        },
    )
