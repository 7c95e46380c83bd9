#!/usr/bin/env bash
# Idempotent set-up on a fresh Debian machine (as root): the system packages netplumb uses,
# then a virtual environment with the pip requirements of pyproject.toml.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(iproute2 nftables iptables docker.io busybox-static dnsmasq-base iputils-ping
          containernetworking-plugins curl netcat-openbsd iperf3 wrk procps psmisc util-linux)
missing=()
for p in "${PACKAGES[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
stamp=.venv/.netplumb-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ ! -x .venv/bin/netplumb ]; then
    .venv/bin/pip install -q --disable-pip-version-check -e '.[dev]'
    touch "$stamp"
fi
# The machine's environment may set PYTHONDONTWRITEBYTECODE: without compiled files every
# one-shot command would recompile netplumb's modules (~30 ms here).
.venv/bin/python -m compileall -q src >/dev/null
