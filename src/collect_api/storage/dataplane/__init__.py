"""The data plane: rows in and out, as Arrow batches, in worker processes.

Its interface is two operations, each a session in a worker (``sessions`` has the worker's
side, ``process`` the processes):

- ``import_session``: ingest an upload's chunks, each with its checkpoint, in one
  transaction per chunk;
- ``export_session``: read a snapshot range of a dataset table and write it as CSV.

The server's side knows no rows: it asks for a chunk, gets counts and positions back, and
gives the checkpoint statement to commit with it. Chunks are sized by time (``ChunkBudget``),
so that a control request never waits long, whatever ``COLLECT_CHUNK_ROWS`` says.

The server's side is ``client`` (``DataPlane`` and its feeds); the worker's side is
``serve``, ``sessions`` and the stores. This package module imports nothing, so that a worker
loads none of the server's libraries (SQLAlchemy among them) and starts quickly.
"""
