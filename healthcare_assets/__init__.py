"""healthcare_assets: a healthcare-insurance MLOps platform as one Dagster asset graph."""
