"""Dagster resources: Spark engines, the Delta lakehouse and its IO manager."""
