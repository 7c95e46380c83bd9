#!/usr/bin/env bash
# Start the Docker Engine the tests use, unless one answers already. These machines have no
# init system to start it: dockerd runs detached (setsid, nohup) and survives this script.
# vfs storage works on any filesystem; --iptables=true (the default, stated) keeps docker0's
# NAT and FORWARD rules, which the Docker-coexistence tests expect.
set -euo pipefail

log=/var/log/netplumb-dockerd.log
pidfile=/var/run/docker.pid
wait_s=60

up() { timeout 5 docker info >/dev/null 2>&1; }

if up; then
    exit 0
fi
for cmd in docker dockerd; do
    command -v "$cmd" >/dev/null || { echo "start-dockerd: $cmd not found (make setup)" >&2; exit 1; }
done

# A dockerd that is still starting (its pidfile names a live dockerd) is waited for, not doubled.
if [ -s "$pidfile" ] && [ "$(cat "/proc/$(cat "$pidfile")/comm" 2>/dev/null)" = dockerd ]; then
    echo "start-dockerd: dockerd $(cat "$pidfile") is running; waiting for it" >&2
else
    echo "start-dockerd: starting dockerd (log: $log)" >&2
    echo "--- $(date -u +%FT%TZ) start-dockerd.sh" >>"$log"
    setsid nohup dockerd --storage-driver=vfs --iptables=true >>"$log" 2>&1 </dev/null &
fi

for _ in $(seq 1 "$wait_s"); do
    if up; then
        exit 0
    fi
    sleep 1
done
echo "start-dockerd: no answer from dockerd after ${wait_s} s; last lines of $log:" >&2
tail -n 30 "$log" >&2
exit 1
