#!/usr/bin/env bash
# Make sure the local PostgreSQL (127.0.0.1:5432) and Redis (127.0.0.1:6379) are up.
# Starts them when installed but stopped; installs nothing.
set -euo pipefail

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if ! port_open 5432; then
  if command -v pg_ctlcluster >/dev/null 2>&1; then
    for v in $(ls /etc/postgresql); do
      pg_ctlcluster --skip-systemctl-redirect "$v" main start || true
    done
  fi
fi
if ! port_open 6379; then
  if command -v redis-server >/dev/null 2>&1; then
    mkdir -p /var/lib/redis /var/log/redis
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
      --dir /var/lib/redis --logfile /var/log/redis/ci.log
  fi
fi
for i in $(seq 1 50); do
  if port_open 5432 && port_open 6379; then echo "PostgreSQL and Redis are up"; exit 0; fi
  sleep 0.2
done
port_open 5432 || echo "PostgreSQL is not listening on 127.0.0.1:5432" >&2
port_open 6379 || echo "Redis is not listening on 127.0.0.1:6379" >&2
exit 1
