"""Which days the fraud autoencoders learn from, and which newer days they are judged on without having seen them.

The newest `holdout_days` received days are held out: the models never train on them, so scoring them is
what the daily job does with a new day (forward). Training claims are sampled across the `span_days` days
before the holdout (capped in rows by the caller), so a large daily volume does not shrink the window to the
newest day or two and a long history does not grow it. Pure Python: no Dagster, no Spark.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta


@dataclass(frozen=True)
class TrainingWindow:
    first_day: date  # the oldest received day training claims are sampled from
    last_day: date  # the newest one: the models never see a later day
    first_forward_day: date  # the first held-out day (scored forward, evaluated forward)
    received_days: int  # received days in first_day..last_day

    def as_params(self) -> dict[str, str | int]:
        return {
            "first_training_day": self.first_day.isoformat(),
            "last_training_day": self.last_day.isoformat(),
            "first_forward_day": self.first_forward_day.isoformat(),
            "training_received_days": self.received_days,
        }


def training_window(received_days: Iterable[date], holdout_days: int, span_days: int) -> TrainingWindow:
    """The training window before the newest `holdout_days` received days, at most `span_days` days long."""
    if holdout_days < 1 or span_days < 1:
        raise ValueError(f"holdout_days and span_days must be at least 1, got {holdout_days} and {span_days}")
    days = sorted(set(received_days))
    if len(days) <= holdout_days:
        raise ValueError(
            f"{len(days)} received day(s) of claims: training holds out the newest {holdout_days} and needs at "
            "least one earlier day; materialise more days first"
        )
    earlier, forward = days[:-holdout_days], days[-holdout_days:]
    last_day = earlier[-1]
    in_span = [day for day in earlier if day > last_day - timedelta(days=span_days)]
    return TrainingWindow(in_span[0], last_day, forward[0], len(in_span))
