"""A Keycloak-compatible stand-in (test double) for realm ``acme``.

It speaks the realm's OIDC endpoints over real HTTP with Keycloak's paths, claim shapes, JWS
headers, JWKS layout and error bodies (``/work/shared/KEYCLOAK.md`` §1-§3, §6.6), so the service,
python-keycloak and the e2e topology can run without a real Keycloak.

In-process::

    fake = FakeKeycloak()                      # seeded: alice, bob, admin; auth-service, ...
    with StandInServer(fake) as server:        # uvicorn on a free port; sets fake.issuer_base
        token = fake.mint_access_token("alice")
        server.stop(); server.start()          # Keycloak goes away and comes back, same port

As a process (``make dev``, e2e): ``python -m tests.fakes.keycloak --port 8081``, driven through
the ``/_standin/...`` control API (see ``__main__``).

Modules: ``_fake`` (state, minting, sessions, faults, back-channel logout), ``_claims`` (claim
sets), ``_keys`` (key ring),
``_endpoints`` (OIDC protocol), ``_app`` (ASGI routing + control API), ``_server`` (uvicorn thread).
"""

from ._claims import at_hash
from ._fake import ENDPOINTS, FakeKeycloak, FaultMode, IssuedToken
from ._keys import KeyRing, RingKey
from ._model import AuthCode, BackchannelDelivery, Client, Session, User
from ._server import StandInServer, ThreadedASGIServer, serve_asgi, serve_standin

__all__ = (
    "ENDPOINTS",
    "AuthCode",
    "BackchannelDelivery",
    "Client",
    "FakeKeycloak",
    "FaultMode",
    "IssuedToken",
    "KeyRing",
    "RingKey",
    "Session",
    "StandInServer",
    "ThreadedASGIServer",
    "User",
    "at_hash",
    "serve_asgi",
    "serve_standin",
)
