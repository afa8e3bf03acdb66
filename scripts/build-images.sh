#!/usr/bin/env bash
# Builds the three service images, tagged with the chart's appVersion:
#   roomcast-auth:<tag>  roomcast-ws-edge:<tag>  roomcast-publisher:<tag>
# on top of docker/base.Dockerfile (roomcast-builder:<tag>, roomcast-runtime:<tag>),
# and prints their names, one a line.
#
# Environment:
#   REGISTRY          also tag each image <REGISTRY>/roomcast-<service>:<tag> and push it
#                     there (log in first: podman login / docker login); the names
#                     printed are then the pushed ones. Give the chart the same value
#                     as image.registry.
#   CONTAINER_ENGINE  podman or docker (default: whichever is installed, podman first)
#   PYTHON_IMAGE      the base image (default python:3.11-slim-bookworm); set
#                     ROOMCAST_LOCAL_BASE=1 to build a Debian base locally instead
#   CA_BUNDLE         a CA bundle file handed to the build as the secret "ca_bundle",
#                     for networks whose TLS proxy re-signs PyPI's certificates
#   IMAGE_TAG         overrides the tag
set -euo pipefail
cd "$(dirname "$0")/.."

engine="${CONTAINER_ENGINE:-}"
if [[ -z "${engine}" ]]; then
  if command -v podman >/dev/null 2>&1; then engine=podman
  elif command -v docker >/dev/null 2>&1; then engine=docker
  else
    echo "build-images: install podman or docker" >&2
    exit 1
  fi
fi

tag="${IMAGE_TAG:-$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\} *$/\1/p' helm/roomcast/Chart.yaml)}"
# podman stores unqualified local builds under localhost/; name them so explicitly,
# so that FROM never goes looking for them in a registry.
prefix=""
if [[ "${engine}" == podman ]]; then prefix="localhost/"; fi

# One build at a time on this machine (parallel test runs share the image store).
lock_dir="${ROOMCAST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/roomcast}"
mkdir -p "${lock_dir}"
exec 8>"${lock_dir}/.images.lock"
flock 8

python_image="${PYTHON_IMAGE:-python:3.11-slim-bookworm}"
if [[ "${ROOMCAST_LOCAL_BASE:-0}" == 1 ]]; then
  if [[ "${engine}" != podman ]]; then
    echo "build-images: ROOMCAST_LOCAL_BASE=1 needs podman (it imports a debootstrap tarball)" >&2
    exit 1
  fi
  python_image="$(PODMAN="${engine}" scripts/build-base-image.sh)"
fi

build=("${engine}" build)
if [[ -n "${CA_BUNDLE:-}" ]]; then
  build+=(--secret "id=ca_bundle,src=${CA_BUNDLE}")
fi

for target in builder runtime; do
  "${build[@]}" -f docker/base.Dockerfile --target "${target}" \
    --build-arg "PYTHON_IMAGE=${python_image}" \
    -t "${prefix}roomcast-${target}:${tag}" docker >&2
done

registry="${REGISTRY:-}"
registry="${registry%/}"
for dir in auth ws-edge publisher; do
  name="roomcast-${dir}"
  "${build[@]}" -f "services/${dir}/Dockerfile" \
    --build-arg "BUILDER_IMAGE=${prefix}roomcast-builder:${tag}" \
    --build-arg "RUNTIME_IMAGE=${prefix}roomcast-runtime:${tag}" \
    -t "${prefix}${name}:${tag}" . >&2
  if [[ -n "${registry}" ]]; then
    "${engine}" tag "${prefix}${name}:${tag}" "${registry}/${name}:${tag}" >&2
    "${engine}" push "${registry}/${name}:${tag}" >&2
    echo "${registry}/${name}:${tag}"
  else
    echo "${prefix}${name}:${tag}"
  fi
done
