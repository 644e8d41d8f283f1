"""The RQ side of the engine: the only code that imports `rq` or `django_rq` (a lint rule says so).

Handing rows to Redis and reading RQ's state (`queueing`), the in-process worker's Lua
bookkeeping (`bookkeeping`), rate and concurrency limits (`limits`), and the worker classes' RQ
machinery (`workers`, and `concurrent` for the worker that runs many jobs at once).
"""
