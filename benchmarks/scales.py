"""Benchmark scales: the synthetic generator's knobs and the history they build.

Every scale runs the same protocol: a backfill of `history_days` days (the end-to-end run),
then one more day on top of it (incremental cost after that history). Claims in the
backfill ~= claims_per_day x history_days (plus ~3 % injected fraud lines and 1 % bad lines).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date, timedelta

FIRST_DAY = date(2026, 1, 1)  # the first partition: the full enrolment roster arrives that day
SEED = 42


@dataclass(frozen=True)
class Scale:
    name: str
    history_days: int
    num_members: int
    num_providers: int
    claims_per_day: int
    rx_claims_per_day: int
    immunizations_per_day: int

    @property
    def nominal_claims(self) -> int:
        return self.claims_per_day * self.history_days

    def synthetic_config(self) -> dict:
        """Run config of `synthetic_landing_feeds` (SyntheticDataConfig)."""
        knobs = asdict(self)
        del knobs["name"], knobs["history_days"]
        return {"seed": SEED, **knobs}

    def day(self, number: int) -> date:
        """The `number`-th partition day (1-based)."""
        return FIRST_DAY + timedelta(days=number - 1)


SCALES = {
    # a smoke test of the runner itself (seconds of data)
    "tiny": Scale("tiny", 5, 500, 40, 200, 120, 20),
    "small": Scale("small", 90, 10_000, 150, 1_100, 700, 110),  # ~100k claims
    "medium": Scale("medium", 90, 100_000, 1_500, 11_100, 7_000, 1_100),  # ~1M claims
    "large": Scale("large", 90, 1_000_000, 15_000, 111_000, 70_000, 11_000),  # ~10M claims (optional)
}
