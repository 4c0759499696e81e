"""Unit tests for auth_service.policy."""
