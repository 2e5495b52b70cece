#!/usr/bin/env sh
# Install pgvector (the PostgreSQL extension `vector`) into Debian's PostgreSQL 15, for the
# pgvector vector store (`LOOKALIKE_VECTOR_STORE=pgvector`, docs/postgresql.md) and its tests.
# Debian bookworm packages no pgvector binary, so this builds Debian's own source release:
# the upstream tarball from the Debian archive, checked against the SHA-256 that Debian's
# pgvector_0.8.0-1.dsc records (pinned here), built with PGXS against postgresql-server-dev-15
# of the installed server's version (so apt does not upgrade the server under running clusters).
# Safe to run again: does nothing when vector.control of this version is already installed.
set -eu

VERSION=0.8.0
SHA256=867a2c328d4928a5a9d6f052cd3bc78c7d60228a9b914ad32aa3db88e9de27b0
URL="${PGVECTOR_URL:-http://deb.debian.org/debian/pool/main/p/pgvector/pgvector_${VERSION}.orig.tar.gz}"
PG_MAJOR=15
PG_CONFIG=/usr/lib/postgresql/$PG_MAJOR/bin/pg_config

installed_version() {
    [ -x "$PG_CONFIG" ] || return 0
    control="$("$PG_CONFIG" --sharedir)/extension/vector.control"
    [ -f "$control" ] && sed -n "s/^default_version *= *'\(.*\)'/\1/p" "$control"
    return 0
}

if [ "$(installed_version)" = "$VERSION" ] \
    && [ -f "$("$PG_CONFIG" --pkglibdir)/vector.so" ]; then
    echo "pgvector $VERSION already installed"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        exec sudo -n sh "$0" "$@"
    fi
    echo "install-pgvector: must run as root (apt-get install and make install into" \
        "/usr/lib/postgresql/$PG_MAJOR); run: sudo sh $0" >&2
    exit 1
fi
if [ ! -x "/usr/lib/postgresql/$PG_MAJOR/bin/postgres" ]; then
    echo "install-pgvector: PostgreSQL $PG_MAJOR is not installed (scripts/install-servers.sh)" >&2
    exit 1
fi
start=$(date +%s)
export DEBIAN_FRONTEND=noninteractive
# the headers of exactly the installed server's version, when the archive still has it
server="$(dpkg-query -W -f='${Version}' postgresql-$PG_MAJOR 2>/dev/null || true)"
need=""
# (pg_config itself comes with the client package; the server headers and PGXS do not)
[ -f "/usr/include/postgresql/$PG_MAJOR/server/postgres.h" ] || need="postgresql-server-dev-$PG_MAJOR"
command -v gcc >/dev/null 2>&1 || need="$need gcc"
command -v make >/dev/null 2>&1 || need="$need make"
command -v curl >/dev/null 2>&1 || need="$need curl ca-certificates"
if [ -n "$need" ]; then
    pinned="$need"
    if [ -n "$server" ]; then
        pinned="$(echo "$need" | sed "s/postgresql-server-dev-$PG_MAJOR/&=$server/")"
    fi
    # shellcheck disable=SC2086  # word splitting wanted: a list of packages
    apt-get install -y -q -o DPkg::Lock::Timeout=300 --no-install-recommends $pinned >/dev/null 2>&1 || {
        apt-get update -q -o DPkg::Lock::Timeout=300 >/dev/null
        apt-get install -y -q -o DPkg::Lock::Timeout=300 --no-install-recommends $pinned >/dev/null 2>&1 \
            || apt-get install -y -q -o DPkg::Lock::Timeout=300 --no-install-recommends $need
    }
fi
[ -f "$("$PG_CONFIG" --includedir-server)/postgres.h" ] || {
    echo "install-pgvector: the PostgreSQL $PG_MAJOR server headers are missing after apt-get" >&2
    exit 1
}

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
curl -fsSL --retry 3 -o "$work/pgvector.tar.gz" "$URL" || {
    echo "install-pgvector: could not download $URL" >&2
    exit 1
}
echo "$SHA256  $work/pgvector.tar.gz" | sha256sum -c --quiet - || {
    echo "install-pgvector: $URL does not have the SHA-256 of Debian's pgvector_$VERSION-1.dsc" >&2
    exit 1
}
tar -xzf "$work/pgvector.tar.gz" -C "$work"
cd "$work/pgvector-$VERSION"
# with_llvm=no: no JIT bitcode (needs clang); OPTFLAGS="": no -march=native, so the build runs
# on any x86-64 machine the image is copied to
make -s -j"$(nproc)" PG_CONFIG="$PG_CONFIG" with_llvm=no OPTFLAGS="" >/dev/null
make -s install PG_CONFIG="$PG_CONFIG" with_llvm=no >/dev/null
[ "$(installed_version)" = "$VERSION" ] || {
    echo "install-pgvector: make install did not install vector.control $VERSION" >&2
    exit 1
}
echo "pgvector $VERSION installed into $("$PG_CONFIG" --pkglibdir) in $(( $(date +%s) - start )) s"
