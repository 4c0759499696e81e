"""Forward-auth: one decision engine behind three gateway dialects (CONTRACT §4).

``gateways`` reads the original request out of each dialect's headers,
``decision`` decides (pure, no I/O), ``endpoint`` is the lean ASGI handler that
ties them to the authenticator, the assertion signer and the audit log.
"""
