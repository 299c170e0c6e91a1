"""Durable jobs: the inbox and a job's life cycle, the runner that works them, the queue that dispatches."""
