#!/usr/bin/env bash
# The test image netplumb/busybox:test, imported from Debian's busybox-static (no image
# registry is reachable here): a static /bin/busybox with every applet linked in /bin.
# Idempotent: does nothing when the image exists.
set -euo pipefail
IMAGE=netplumb/busybox:test
BUSYBOX=/bin/busybox

if docker image inspect "$IMAGE" >/dev/null 2>&1; then
    exit 0
fi
# A dynamically linked busybox (Debian's "busybox" package) would not run without its libc.
if ! "$BUSYBOX" --list >/dev/null 2>&1 || [ -n "$(ldd "$BUSYBOX" 2>/dev/null | grep '=>')" ]; then
    echo "busybox-image: $BUSYBOX is missing or not static (apt-get install busybox-static)" >&2
    exit 1
fi
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,etc,tmp,root,proc,sys,dev,run,var/run}
chmod 1777 "$root/tmp"
cp "$BUSYBOX" "$root/bin/busybox"
for applet in $("$BUSYBOX" --list); do
    [ "$applet" = busybox ] || ln -s busybox "$root/bin/$applet"
done
cat >"$root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$root/etc/hosts"
tar -C "$root" -c . |
    docker import --change 'CMD ["/bin/sh"]' --change 'ENV PATH=/bin' - "$IMAGE" >/dev/null
echo "busybox-image: built $IMAGE" >&2
