"""The update engine every agent trains through, schedules counted in frames, and running normalisation."""
