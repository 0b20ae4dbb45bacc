#!/usr/bin/env bash
# Build dfn's image from the Dockerfile and run its default command without a Docker engine:
# a Debian base made with debootstrap, the image built by buildah (daemonless), run by podman
# (or, where podman's runtime may not run here, by buildah).
# As root on Debian/Ubuntu; it installs debootstrap, buildah and podman if they are missing.
#
#   container/build_with_buildah.sh [WORK_DIR]        (default /var/tmp/dfn-image)
#
# Environment:
#   TORCH_INDEX_URL   where the image's pip takes torch (default: a local index of this machine's
#                     CPU wheel in TORCH_WHEELS, served on 127.0.0.1 while building)
#   TORCH_WHEELS      folder holding torch-<version>+cpu-*.whl (default /opt/wheels)
#   STORAGE_DRIVER    containers' storage driver (default vfs: works inside containers and VMs
#                     without overlay support; slower and larger than overlay)
#   HOST_CA_BUNDLE    this machine's CA certificates, lent to pip during the build only, for
#                     networks whose HTTPS proxy signs with a local CA (default: Debian's bundle)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work=${1:-/var/tmp/dfn-image}
export STORAGE_DRIVER=${STORAGE_DRIVER:-vfs}
base=localhost/dfn-base:bookworm
image=localhost/dfn:latest
mkdir -p "$work"
log() { echo "[$(date +%T)] $*"; }

if ! command -v debootstrap >/dev/null || ! command -v buildah >/dev/null || ! command -v podman >/dev/null; then
    log "installing debootstrap, buildah, podman"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap buildah podman
fi

# 1. the base image: Debian bookworm (Python 3.11) from debootstrap
if ! buildah inspect --type image "$base" >/dev/null 2>&1; then
    log "debootstrap: Debian bookworm into $work/rootfs"
    rm -rf "$work/rootfs"
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
        bookworm "$work/rootfs" http://deb.debian.org/debian >"$work/debootstrap.log"
    log "importing it as $base"
    tar -C "$work/rootfs" -c . | podman import --change 'CMD ["/bin/bash"]' - "$base" >/dev/null
fi

# 2. torch for the image: the CPU wheel of this machine, served as a package index
server_pid=
if [ -z "${TORCH_INDEX_URL:-}" ]; then
    wheels=${TORCH_WHEELS:-/opt/wheels}
    wheel=$(ls "$wheels"/torch-*+cpu-cp311-*.whl | head -n 1)
    log "serving $wheel and its dependencies as a local package index"
    rm -rf "$work/index" "$work/downloads"
    python3 -m pip download --quiet --dest "$work/downloads" "$wheel"
    python3 - "$work/downloads" "$work/index/simple" <<'PY'
import re, shutil, sys
from pathlib import Path
src, index = Path(sys.argv[1]), Path(sys.argv[2])
for f in src.iterdir():     # PEP 503: one folder per normalised project name
    name = re.sub(r"[-_.]+", "-", f.name.split("-")[0]).lower()
    (index / name).mkdir(parents=True, exist_ok=True)
    shutil.copy(f, index / name / f.name)
PY
    python3 -m http.server --bind 127.0.0.1 8765 --directory "$work/index" >/dev/null 2>&1 &
    server_pid=$!
    trap 'kill $server_pid 2>/dev/null || true' EXIT
    sleep 1
    TORCH_INDEX_URL=http://127.0.0.1:8765/simple
fi

# 3. the image, from the repository's Dockerfile
ca=${HOST_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
mounts=()
if [ -f "$ca" ]; then                      # build-time only: nothing of it stays in the image
    printf '[global]\ncert = /etc/ssl/host-ca.crt\n' >"$work/pip.conf"
    mounts=(--volume "$ca:/etc/ssl/host-ca.crt:ro" --volume "$work/pip.conf:/etc/pip.conf:ro")
fi
log "buildah bud -> $image (base $base, torch from $TORCH_INDEX_URL)"
buildah bud --quiet --network host --isolation chroot --layers=false "${mounts[@]}" \
    --build-arg BASE_IMAGE="$base" --build-arg TORCH_INDEX_URL="$TORCH_INDEX_URL" \
    -t "$image" "$repo"
[ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
log "image size: $(podman image inspect "$image" --format '{{.Size}}') bytes"

# 4. its default command (a 500-step steerable fit), its run directory mounted from the host.
# `podman run` needs a runtime allowed to set rlimits; where it is not (crun: "setrlimit
# RLIMIT_NPROC: Operation not permitted" inside some sandboxes), buildah runs the same command
# in a container of the image with chroot isolation.
mkdir -p "$work/runs"
cmd=$(podman image inspect "$image" --format '{{json .Config.Cmd}}')
log "running $image: $cmd"
if ! podman run --rm --network host --cgroups disabled -v "$work/runs:/dfn/runs" "$image" 2>"$work/podman.err"; then
    log "podman run failed ($(tail -n 1 "$work/podman.err")); running the image's command with buildah"
    ctr=$(buildah from "$image")
    trap 'buildah rm "$ctr" >/dev/null 2>&1 || true' EXIT
    mapfile -t argv < <(python3 -c 'import json, sys; print("\n".join(json.loads(sys.argv[1])))' "$cmd")
    buildah run --isolation chroot --network host --volume "$work/runs:/dfn/runs" "$ctr" -- "${argv[@]}"
fi
ls -l "$work/runs/steerable_docker/checkpoints"
log "done: image $image; its run in $work/runs/steerable_docker"
