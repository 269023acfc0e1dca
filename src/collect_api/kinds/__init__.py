"""One module per job kind: how its jobs are submitted and run, chunk by checkpointed chunk.

Each kind's routes and registration are in its module under ``api/`` (``KIND``), listed in
``app.KINDS``.
"""
