"""Liveness, readiness and metrics endpoints (CONTRACT §10)."""
