#!/usr/bin/env sh
# Install the servers lookalike scales out onto, for the tests and benchmarks that start them:
# Debian's PostgreSQL (initdb/pg_ctl run by lookalike.servers.PostgresServer) with the pgvector
# extension (scripts/install-pgvector.sh, built from Debian's source). The Milvus
# standalone server comes from PyPI (`milvus==2.3.5`, in the dev extra), not from here.
# Safe to run again: does nothing when PostgreSQL and pgvector are present.
set -eu
here="$(dirname "$0")"

if ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then
    echo "postgresql already installed: $(ls -d /usr/lib/postgresql/*/bin/pg_ctl | tail -1)"
    exec sh "$here/install-pgvector.sh"
fi
if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
else
    echo "install-servers: need root (or sudo) to apt-get install postgresql" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends postgresql
ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || {
    echo "install-servers: apt-get finished but pg_ctl is missing" >&2
    exit 1
}
echo "postgresql installed"
exec sh "$here/install-pgvector.sh"
