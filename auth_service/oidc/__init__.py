"""The OpenID provider (Keycloak realm): discovery, keys, and later the browser login flow."""
