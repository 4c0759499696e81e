"""Run the Keycloak stand-in as a process.

``python -m tests.fakes.keycloak --host 127.0.0.1 --port 8081 --realm acme
[--realm-file keycloak/acme-dev.toml] [--public-base http://...]
[--backchannel-url http://.../backchannel-logout] [--processes N]``

The realm's clients, mappers, roles and users come from the desired-state file (default: the
development overlay in ``keycloak/``); the admin REST API under ``/admin/realms`` changes them.

``--processes N`` forks N processes after the realm (and its keys) exists, all
accepting on the one socket: N cores mint tokens for ``make bench``. Each keeps its
own state, so only stateless use is consistent then (minting, discovery, JWKS);
rotating keys or ending sessions reaches one process only.

Besides the realm endpoints it serves a control API (never under ``/realms``):

- ``POST /_standin/rotate-keys`` → ``{"kid"}``
- ``POST /_standin/faults`` ``{"endpoint","mode","delay"}`` → 204; ``DELETE /_standin/faults`` → 204
- ``GET /_standin/requests`` → per-endpoint request counters
- ``POST /_standin/mint`` (``mint_access_token`` kwargs) → ``{"access_token"}``
- ``POST /_standin/end-session`` ``{"sid"}`` / ``POST /_standin/logout-user`` ``{"username"}``
  → ``{"deliveries": [status, ...]}`` (back-channel logout results)
- ``GET /_standin/deliveries`` → every back-channel delivery so far
"""

from __future__ import annotations

import argparse
import os
import socket
from collections.abc import Sequence
from pathlib import Path

import uvicorn

from ._fake import REALM_FILE, FakeKeycloak


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(prog="python -m tests.fakes.keycloak", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--realm", default="acme")
    parser.add_argument(
        "--public-base",
        default=None,
        help="base URL clients see (issuer = <public-base>/realms/<realm>); default http://host:port",
    )
    parser.add_argument(
        "--realm-file",
        type=Path,
        default=REALM_FILE,
        help="desired-state file the realm is seeded from (default: keycloak/acme-dev.toml)",
    )
    parser.add_argument(
        "--backchannel-url",
        default=None,
        help="back-channel logout URL of the auth-service client",
    )
    parser.add_argument(
        "--processes",
        type=int,
        default=1,
        help="processes sharing the realm's keys and socket (stateless use only; default 1)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Build the seeded realm and serve it until interrupted.

    The socket is bound and listening before the ``ready`` line is printed, so a parent process
    can read that line and connect at once (``--port 0`` picks a free port and prints it).
    """
    args = parse_args(argv)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    sock.listen(128)
    base = f"http://{args.host}:{sock.getsockname()[1]}"
    fake = FakeKeycloak(
        realm=args.realm, issuer_base=args.public_base or base, realm_file=args.realm_file
    )
    if args.backchannel_url:
        fake.clients["auth-service"].backchannel_logout_url = args.backchannel_url
    print(f"Keycloak stand-in ready: {base} issuer {fake.issuer}", flush=True)
    for _ in range(args.processes - 1):
        if os.fork() == 0:  # the child serves too; its parent goes on forking
            break
    config = uvicorn.Config(fake.app, log_level="warning", lifespan="off", ws="none")
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
