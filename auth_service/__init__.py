"""auth_service: authentication and identity service behind an API gateway."""
