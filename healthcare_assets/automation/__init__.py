"""Jobs, partitioned schedules and sensors."""
