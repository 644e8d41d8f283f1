"""The jobs app's REST API, one module per area; `jobs.urls` gathers their routes."""
