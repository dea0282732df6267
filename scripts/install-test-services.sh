#!/usr/bin/env bash
# Installs the servers the test suite starts for itself (on free loopback ports, in temporary
# folders; never the system services): redis-server for the shared-state and cluster tests,
# PostgreSQL 15 (initdb + postgres, run as the `postgres` user) for the job store's tests.
# Idempotent, quick when everything is there.
set -euo pipefail

PG_BIN=${TEXTSERVE_TEST_PG_BIN:-/usr/lib/postgresql/15/bin}

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
[[ -x "$PG_BIN/postgres" && -x "$PG_BIN/initdb" ]] || missing+=(postgresql)

if ((${#missing[@]})); then
    sudo=()
    if [[ $(id -u) -ne 0 ]]; then
        sudo=(sudo)
    fi
    echo "install-test-services: apt-get install ${missing[*]}"
    "${sudo[@]}" apt-get update -qq
    # The package's own cluster is never used: the tests initdb their own.
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
fi

if ! command -v redis-server >/dev/null 2>&1; then
    echo "install-test-services: redis-server is still missing" >&2
    exit 1
fi
if [[ ! -x "$PG_BIN/postgres" ]]; then
    echo "install-test-services: $PG_BIN/postgres is still missing (Debian 12 ships 15)" >&2
    exit 1
fi
