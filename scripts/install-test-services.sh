#!/usr/bin/env bash
# Installs the servers the test suite starts for itself (on free loopback ports, in temporary
# folders; never the system services): redis-server for the shared-state and cluster tests.
# Idempotent, quick when everything is there.
set -euo pipefail

if ! command -v redis-server >/dev/null 2>&1; then
    sudo=()
    if [[ $(id -u) -ne 0 ]]; then
        sudo=(sudo)
    fi
    echo "install-test-services: apt-get install redis-server"
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
        redis-server >/dev/null
fi

if ! command -v redis-server >/dev/null 2>&1; then
    echo "install-test-services: redis-server is still missing" >&2
    exit 1
fi
