"""PySpark DataFrame transformations of the medallion layers: no Dagster imports.

Assets call these functions; benchmarks and tests call them directly.
"""
