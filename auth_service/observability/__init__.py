"""Observability: request ids, structured logs, traces and metrics, set up once by the app."""
