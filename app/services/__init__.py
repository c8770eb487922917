"""The domain as plain functions over models: they return models or plain results, raise
app.domain errors, write audited changes through audit.transaction and enqueue jobs by name
after commit. No HTTP, no WeChat calls, no job code."""
