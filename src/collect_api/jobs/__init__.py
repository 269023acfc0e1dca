"""The job engine: states and transitions, the supervisor that runs jobs, the progress broker."""
