#!/usr/bin/env bash
# Start the Docker Engine the tests use, if it is not running: vfs storage works everywhere.
set -euo pipefail
if timeout 5 docker info >/dev/null 2>&1; then
    exit 0
fi
log=/var/log/netplumb-dockerd.log
setsid nohup dockerd --storage-driver=vfs >"$log" 2>&1 < /dev/null &
for _ in $(seq 1 60); do
    if timeout 5 docker info >/dev/null 2>&1; then
        exit 0
    fi
    sleep 1
done
echo "start-dockerd: dockerd did not come up; last lines of $log:" >&2
tail -20 "$log" >&2
exit 1
