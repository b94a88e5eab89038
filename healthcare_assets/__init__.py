"""healthcare_assets: a healthcare-insurance MLOps platform as one Dagster asset graph."""

import warnings

from dagster import BetaWarning

# Single-run backfills and look-back partition mappings are beta in this Dagster release; they are
# used on purpose, so their notices are not repeated on every load.
warnings.filterwarnings("ignore", category=BetaWarning)
