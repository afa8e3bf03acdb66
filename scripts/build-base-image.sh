#!/usr/bin/env bash
# Builds a local Debian 12 + Python 3.11 base image for podman when the public
# python:3.11-slim-bookworm cannot be pulled. Prints the image name.
#
# The root file system comes from debootstrap (Debian's own packages only) and is
# cached as a tarball, so only the first run pays for it; `podman import` of the
# cached tarball takes seconds.
set -euo pipefail

IMAGE="${ROOMCAST_BASE_IMAGE_NAME:-localhost/roomcast-base:bookworm-py311}"
CACHE_DIR="${ROOMCAST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/roomcast}/images"
TARBALL="${CACHE_DIR}/debian-bookworm-python3.11.tar"
PODMAN="${PODMAN:-podman}"

if "${PODMAN}" image exists "${IMAGE}" 2>/dev/null; then
  echo "${IMAGE}"
  exit 0
fi

mirror() {
  # The mirror this machine's apt already uses, so the build needs no other host.
  if [[ -n "${DEBIAN_MIRROR:-}" ]]; then
    echo "${DEBIAN_MIRROR}"
    return
  fi
  local found
  found="$(grep -hoE '^(URIs:|deb) *[a-z]+://[^ ]+/debian/?( |$)' /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null \
    | grep -oE '[a-z]+://[^ ]+' | head -n1 || true)"
  if [[ -z "${found}" ]]; then
    echo "build-base-image: set DEBIAN_MIRROR to a Debian mirror URL" >&2
    exit 1
  fi
  echo "${found}"
}

if [[ ! -s "${TARBALL}" ]]; then
  command -v debootstrap >/dev/null || {
    echo "build-base-image: debootstrap is missing (apt-get install debootstrap)" >&2
    exit 1
  }
  mkdir -p "${CACHE_DIR}"
  rootfs="$(mktemp -d "${CACHE_DIR}/.rootfs.XXXXXX")"
  trap 'rm -rf "${rootfs}"' EXIT
  echo "build-base-image: debootstrap bookworm (once; cached in ${CACHE_DIR})" >&2
  debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
    bookworm "${rootfs}" "$(mirror)" >&2
  # What an image does not need: package lists, caches, docs and locales.
  rm -rf "${rootfs}"/var/lib/apt/lists/* "${rootfs}"/var/cache/apt/* \
    "${rootfs}"/usr/share/doc/* "${rootfs}"/usr/share/man/* "${rootfs}"/usr/share/locale/*
  tar -C "${rootfs}" -cf "${TARBALL}.part" .
  mv "${TARBALL}.part" "${TARBALL}"
fi

"${PODMAN}" import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["python3"]' \
  "${TARBALL}" "${IMAGE}" >&2
echo "${IMAGE}"
