#!/usr/bin/env bash
# The image netplumb/birthdays:local: Debian 12 (debootstrap minbase) with python3, /bin/sh and
# ip, and the birthday service in a virtual environment at /opt/birthdays (on PATH) with what
# `birthdays serve` and `birthdays mongo` import (pymongo, uvloop, secantusdb, httptools). No
# image registry is reachable here, so the rootfs is built locally and `docker import`ed.
#
# Idempotent and fast when current: the image carries a label with a hash of src/birthdays, the
# service's requirements (from pyproject.toml), the Debian package list and this script; when
# the running engine's image has that hash the script does nothing else. The debootstrapped
# base (the slow part, ~45 s) is kept in $NETPLUMB_IMAGE_CACHE (default below) by its own key.
#
# Neither apt nor pip runs with the network inside the chroot: debootstrap fetches the Debian
# packages from the host (mirror from the host's apt sources, or $DEBIAN_MIRROR), the host's
# pip downloads the wheels with the host's pip configuration (index, find-links, certificates)
# for the chroot's Python and platform, and pip installs them inside the chroot with --no-index.
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=netplumb/birthdays:local
SUITE=bookworm
DEB_PACKAGES=python3,iproute2
BASE_REV=1 # bump when the base's clean-up below changes
SERVICE_REQUIREMENTS=(pymongo uvloop secantusdb httptools)
VENV=/opt/birthdays
CACHE=${NETPLUMB_IMAGE_CACHE:-/var/cache/netplumb/python-image}
LABEL=org.netplumb.birthdays.hash
PY=.venv/bin/python
started=$SECONDS

fail() { echo "python-image: $*" >&2; exit 1; }

[ -x "$PY" ] || fail "$PY not found (make setup)"
command -v docker >/dev/null || fail "docker not found (make setup)"

# The requirement specifiers of the service's packages, as pyproject.toml declares them, and
# the hash of everything the image is made from. One line of hash, then one per requirement.
inputs=$("$PY" - "$0" "$SUITE" "$DEB_PACKAGES" "${SERVICE_REQUIREMENTS[@]}" <<'PYEOF'
import hashlib, pathlib, re, sys, tomllib
script, suite, debs, *names = sys.argv[1:]
project = tomllib.loads(pathlib.Path("pyproject.toml").read_text())["project"]
specs = {re.split(r"[\s<>=!~;\[]", d, maxsplit=1)[0].lower(): d for d in project["dependencies"]}
missing = [n for n in names if n not in specs]
if missing:
    sys.exit(f"python-image: pyproject.toml declares no {', '.join(missing)}")
if project.get("scripts", {}).get("birthdays") is None:
    sys.exit("python-image: pyproject.toml has no [project.scripts] birthdays")
h = hashlib.sha256()
for part in (suite, debs, *(specs[n] for n in names), project["scripts"]["birthdays"]):
    h.update(part.encode() + b"\0")
h.update(pathlib.Path(script).read_bytes() + b"\0")
for path in sorted(pathlib.Path("src/birthdays").rglob("*.py")):
    h.update(str(path).encode() + b"\0" + path.read_bytes() + b"\0")
print(h.hexdigest()[:16])
print("\n".join(specs[n] for n in names))
PYEOF
) || exit 1
hash=$(head -n 1 <<<"$inputs")
mapfile -t requirements < <(tail -n +2 <<<"$inputs")

current() {
    [ "$(docker image inspect -f "{{index .Config.Labels \"$LABEL\"}}" "$IMAGE" 2>/dev/null)" \
        = "$hash" ]
}
if current; then
    exit 0
fi

timeout 10 docker info >/dev/null 2>&1 || fail "Docker Engine not reachable (scripts/start-dockerd.sh)"
mkdir -p "$CACHE"
exec 9>"$CACHE/lock"
flock 9 # another build of the same image waits, then finds it current
if current; then
    exit 0
fi
rm -rf "$CACHE"/build.* # left by a build that was killed (none runs: this one holds the lock)
old_id=$(docker image inspect -f '{{.Id}}' "$IMAGE" 2>/dev/null || true)

# The host's Debian mirror: the first active "…/debian" URI of its apt sources.
mirror=${DEBIAN_MIRROR:-$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.sources \
    2>/dev/null | grep -v '^[[:space:]]*#' | grep -oE '(https?|file)://[^ ]*/debian/?( |$)' \
    | head -n 1 | tr -d ' ' || true)}
mirror=${mirror:-http://deb.debian.org/debian}

# The base rootfs, debootstrapped once per package list and cleaned of what no container needs.
base_key=$(printf '%s\0' "$SUITE" "$DEB_PACKAGES" "$BASE_REV" | sha256sum | cut -c1-16)
base=$CACHE/base-$base_key
if [ ! -d "$base" ]; then
    command -v debootstrap >/dev/null || fail "debootstrap not found (make setup)"
    echo "python-image: debootstrap $SUITE ($DEB_PACKAGES) from $mirror" >&2
    rm -rf "$base.tmp"
    if ! debootstrap --variant=minbase --include="$DEB_PACKAGES" "$SUITE" "$base.tmp" \
            "$mirror" >"$CACHE/debootstrap.log" 2>&1; then
        tail -n 20 "$CACHE/debootstrap.log" >&2
        rm -rf "$base.tmp"
        fail "debootstrap failed (log: $CACHE/debootstrap.log)"
    fi
    (
        cd "$base.tmp"
        rm -rf var/cache/apt/* var/lib/apt/lists/* var/cache/debconf/*-old var/log/* \
            usr/share/doc/* usr/share/man/* usr/share/info/* usr/share/locale/* \
            usr/share/lintian etc/hostname etc/resolv.conf
        mkdir -p var/lib/apt/lists/partial
    )
    mv "$base.tmp" "$base"
    # Earlier bases (another package list) are not needed any more.
    find "$CACHE" -maxdepth 1 -name 'base-*' ! -name "base-$base_key" -exec rm -rf {} +
fi

work=$(mktemp -d "$CACHE/build.XXXXXX")
trap 'rm -rf "$work"' EXIT
root=$work/root
cp -a "$base" "$root"
in_root() { env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 chroot "$root" "$@"; }

# Wheels for the chroot's Python and C library, fetched by the host's pip. This pip does not
# widen a manylinux_2_N platform to the older ones it includes: every tag is named.
read -r pyver platforms < <(in_root python3 -c '
import os, platform, sys
major, minor = map(int, os.confstr("CS_GNU_LIBC_VERSION").split()[1].split("."))
arch = platform.machine()
legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
tags = [f"manylinux_{major}_{m}_{arch}" for m in range(minor, 4, -1)]
tags += [f"{legacy[m]}_{arch}" for m in legacy if m <= minor]
print("%d.%d" % sys.version_info[:2], ",".join(tags))') || fail "python3 does not run in the rootfs"
platform_args=()
for p in ${platforms//,/ }; do platform_args+=(--platform "$p"); done
wheels=$root/tmp/wheels
stage=$work/stage
mkdir -p "$wheels" "$stage/src"
# Only the service's package goes into the wheel (the repository's pyproject.toml, bin/ for its
# script-files, and src/birthdays); building from a copy leaves no build/ in the work tree.
cp -a pyproject.toml README.md bin "$stage/"
cp -a src/birthdays "$stage/src/"
find "$stage" -name __pycache__ -prune -exec rm -rf {} +
pip_log=$work/pip.log
pip_step() {
    if ! "$@" >>"$pip_log" 2>&1; then
        grep -v "is ignored: it is neither a file nor a directory" "$pip_log" | tail -n 20 >&2
        fail "failed: ${*:1:4} ... (log above)"
    fi
}
pip_step "$PY" -m pip wheel -q --no-deps --wheel-dir "$wheels" "$stage"
pip_step "$PY" -m pip download -q --only-binary=:all: --dest "$wheels" \
    --python-version "$pyver" --implementation cp "${platform_args[@]}" \
    "${requirements[@]}" pip
project_wheel=$(cd "$wheels" && ls netplumb-*.whl)
pip_wheel=$(cd "$wheels" && ls pip-*.whl)

# The venv has no pip of its own: pip runs from its wheel (smaller image, nothing to upgrade).
pip_in_root=("$VENV/bin/python" "/tmp/wheels/$pip_wheel/pip" install -q --no-index
             --find-links /tmp/wheels --no-cache-dir --no-warn-script-location)
pip_step in_root python3 -m venv --without-pip "$VENV"
pip_step in_root "${pip_in_root[@]}" "${requirements[@]}"
pip_step in_root "${pip_in_root[@]}" --no-deps "/tmp/wheels/$project_wheel"
in_root "$VENV/bin/birthdays" --help >/dev/null || fail "birthdays does not start in the image"
# --help imports little; the server's modules import every compiled dependency (httptools, uvloop).
in_root "$VENV/bin/python" -B -c "import birthdays.server, uvloop" \
    || fail "the service's modules do not import in the image"

# What no container uses: the wheels, netplumb's launchers (the image holds only the service,
# which never imports netplumb), the packages' test suites and build-time files, and the debug
# sections of extension modules (uvloop's alone are ~11 MB).
site=$root$VENV/lib/python$pyver/site-packages
rm -rf "$wheels" "$root$VENV/bin/netplumb" "$root$VENV/bin/pipework"
find "$site" -depth -type d -name tests -exec rm -rf {} +
find "$site" -type f \( -name '*.pyi' -o -name '*.pyx' -o -name '*.pxd' -o -name '*.c' \
    -o -name '*.h' \) -delete
if command -v strip >/dev/null; then
    find "$site" -name '*.so' -type f -print0 | while IFS= read -r -d '' so; do
        if readelf -S "$so" 2>/dev/null | grep -q '\.debug_info'; then
            strip --strip-debug "$so"
        fi
    done
fi

tar -C "$root" --numeric-owner --exclude='./dev/*' -c . |
    docker import \
        --change "LABEL $LABEL=$hash" \
        --change "ENV PATH=$VENV/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
        --change 'ENV LANG=C.UTF-8 PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1' \
        --change 'CMD ["birthdays", "serve"]' \
        - "$IMAGE" >/dev/null
new_id=$(docker image inspect -f '{{.Id}}' "$IMAGE")
if [ -n "$old_id" ] && [ "$old_id" != "$new_id" ]; then
    docker rmi "$old_id" >/dev/null 2>&1 || true # still used by a container: left for later
fi
size=$(docker image inspect -f '{{.Size}}' "$IMAGE")
echo "python-image: built $IMAGE ($hash, $((size / 1000000)) MB) in $((SECONDS - started)) s" >&2
