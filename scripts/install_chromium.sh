#!/usr/bin/env bash
# Install Debian's headless-capable Chromium for the report screenshot test.
# Idempotent: does nothing when `chromium` is already on PATH. Needs root (or sudo) and
# Debian's package index; no browser build is ever downloaded by a Python tool.
set -euo pipefail

if command -v chromium >/dev/null 2>&1; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "install_chromium.sh: chromium is missing and this user is not root;" \
            "run 'apt-get install -y chromium' as root" >&2
        exit 1
    fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
command -v chromium >/dev/null 2>&1
