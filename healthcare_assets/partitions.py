"""The daily partitioning of every incremental asset: one partition per landing day (UTC)."""

from __future__ import annotations

from datetime import date, datetime

import dagster as dg

PARTITIONS_START = date(2026, 1, 1)

daily_partitions = dg.DailyPartitionsDefinition(start_date=datetime.combine(PARTITIONS_START, datetime.min.time()))

# Backfills of many days run as one Spark job instead of one run per day.
single_run_backfill = dg.BackfillPolicy.single_run()
