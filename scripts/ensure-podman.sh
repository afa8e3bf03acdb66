#!/usr/bin/env bash
# Installs Debian's podman (with runc) and debootstrap when missing, for the container
# check in tests/deploy. Without root or passwordless sudo it only says so: that
# check then reports why it cannot run.
set -euo pipefail

missing=()
command -v podman >/dev/null 2>&1 || missing+=(podman)
command -v runc >/dev/null 2>&1 || missing+=(runc)
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
if [[ ${#missing[@]} -eq 0 ]]; then
  exit 0
fi

sudo=()
if [[ "$(id -u)" != 0 ]]; then
  if sudo -n true 2>/dev/null; then
    sudo=(sudo -n)
  else
    echo "ensure-podman: ${missing[*]} missing and no root: the container check will be skipped" >&2
    exit 0
  fi
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure-podman: ${missing[*]} missing and no apt-get: install them by hand" >&2
  exit 0
fi
echo "ensure-podman: installing ${missing[*]} from Debian" >&2
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq "${missing[@]}" >&2
