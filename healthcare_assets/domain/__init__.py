"""Pure domain logic: no Dagster, no Spark session plumbing."""
