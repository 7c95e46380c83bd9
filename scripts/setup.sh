#!/usr/bin/env bash
# Idempotent set-up on a fresh Debian 12 machine (as root): the system packages netplumb and its
# tests use, then a virtual environment with the pip requirements of pyproject.toml.
# A second run does next to nothing: one dpkg-query (~10 ms, and none while the stamp holds)
# and a pip install only when pyproject.toml is newer than its stamp.
set -euo pipefail
cd "$(dirname "$0")/.."

# iptables: dockerd's own rules (--iptables=true); util-linux: nsenter, unshare, setsid;
# python3-venv: Debian's python3 has no ensurepip without it; debootstrap: scripts/python-image.sh.
# podman: the CNI runtime tests; gcc, libc6-dev: netplumb-cni's agent client (netplumb cni install).
# bind9-dnsutils: dig, for the name server tests; aardvark-dns: bench/dns.py compares it.
# nginx-light: bench/ports.py's server (keep-alive and an ordinary backlog, which busybox httpd
# lacks; started with its own config, the package's service is not used); conntrack, tcpdump:
# to look at a published port's connections (conntrack -S, captures inside the namespaces);
# bpftool: the tests read the socket redirection's programs and map with it (kernel/socklb.py).
PACKAGES=(iproute2 nftables iptables docker.io busybox-static dnsmasq-base iputils-ping
          containernetworking-plugins curl netcat-openbsd iperf3 wrk procps psmisc util-linux
          python3 python3-venv debootstrap librsvg2-bin podman gcc libc6-dev bind9-dnsutils
          aardvark-dns nginx-light conntrack tcpdump bpftool)
apt_stamp=.venv/.netplumb-apt
wanted="${PACKAGES[*]}"

# The stamp holds while the package list is the same and dpkg has changed nothing since.
if [ ! -f "$apt_stamp" ] || [ "$(cat "$apt_stamp")" != "$wanted" ] \
        || [ /var/lib/dpkg/status -nt "$apt_stamp" ]; then
    # One dpkg-query for all (dpkg -s one by one costs ~20 ms each); a package it does not
    # know is missing from its output, one it knows but is not installed is not "ii".
    installed=$(dpkg-query -W -f='${Package} ${db:Status-Abbrev}\n' "${PACKAGES[@]}" 2>/dev/null \
                | awk '$2 == "ii" {print $1}' || true)
    missing=()
    for p in "${PACKAGES[@]}"; do
        grep -qx -- "$p" <<<"$installed" || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "setup: installing ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1
        apt-get update -qq
        apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
fi

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
echo "$wanted" > "$apt_stamp"

stamp=.venv/.netplumb-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ ! -x .venv/bin/netplumb ]; then
    echo "setup: pip install -e '.[dev]'"
    .venv/bin/pip install -q --disable-pip-version-check -e '.[dev]'
    touch "$stamp"
fi
# The machine's environment may set PYTHONDONTWRITEBYTECODE: without compiled files every
# one-shot command would recompile netplumb's modules (~30 ms here).
.venv/bin/python -m compileall -q src >/dev/null

# Launchers that start Python directly with -S (an installer turns bin/'s portable sh
# launchers into these only here, where the venv's and src's absolute paths are known): no
# shell in between, no site, no directory scan — ~2 ms of a one-shot command's 25 ms budget.
root=$(pwd)
site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
for name in netplumb pipework; do
    cat > ".venv/bin/$name.tmp" <<LAUNCHER
#!$root/.venv/bin/python3 -S
import sys
sys.path += ["$site", "$root/src"]
sys.argv[1:1] = ["$name"]
from netplumb.cli.main import launch
launch()
LAUNCHER
    chmod 755 ".venv/bin/$name.tmp"
    mv ".venv/bin/$name.tmp" ".venv/bin/$name"
done

# The hosts' holder in C (src/netplumb/hosts/holder.c): ~0.1 MB of private memory a host where
# the Python holder (hosts/holder.py) takes ~2.8 MB. netplumb finds it next to its Python
# (supervise.c_holder); without a compiler it is not built and the Python holder serves.
# Static: a dynamic one's relocations and libc data cost each holder more private pages.
# Built aside and renamed: running holders keep the old file, which cannot be written to.
holder=.venv/bin/np-holder
if [ ! -x "$holder" ] || [ src/netplumb/hosts/holder.c -nt "$holder" ]; then
    if command -v cc >/dev/null; then
        cc -O2 -Wall -Wextra -Werror -static -s -o "$holder.tmp" src/netplumb/hosts/holder.c
        mv "$holder.tmp" "$holder"
    fi
fi
