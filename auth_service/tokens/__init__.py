"""Access tokens on the service side: verified-token cache, revocation, lightweight-token
introspection, the identity handed to policy and gateways, ``X-Auth-Assertion`` signing,
and ``POST /tokens/introspect``. Signature and claim checks live in `auth_service.verifier`.
"""
