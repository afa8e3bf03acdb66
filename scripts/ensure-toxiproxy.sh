#!/usr/bin/env bash
# Prints the path of the pinned Toxiproxy server, building it from its Go module on first
# use. The network tests put it between their clients and the services; the binary is
# cached per version, so later runs (and CI on the same machine) reuse it.
set -euo pipefail

TOXIPROXY_VERSION="${TOXIPROXY_VERSION:-v2.5.0}"
CACHE_DIR="${ROOMCAST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/roomcast}/toxiproxy/${TOXIPROXY_VERSION}"
TOXIPROXY_BIN="${CACHE_DIR}/toxiproxy-server"

if [[ -x "${TOXIPROXY_BIN}" ]]; then
  echo "${TOXIPROXY_BIN}"
  exit 0
fi

if ! command -v go >/dev/null 2>&1; then
  for candidate in /usr/local/go/bin/go /usr/lib/go/bin/go; do
    if [[ -x "${candidate}" ]]; then
      PATH="$(dirname "${candidate}"):${PATH}"
      break
    fi
  done
fi
if ! command -v go >/dev/null 2>&1; then
  echo "ensure-toxiproxy: the Go toolchain is needed to build toxiproxy ${TOXIPROXY_VERSION} (apt-get install golang-go, or a Go from go.dev)" >&2
  exit 1
fi

mkdir -p "${CACHE_DIR}"
# One build at a time: a second caller waits for the first and then reuses its binary.
exec 9>"${CACHE_DIR}/.lock"
flock 9
if [[ -x "${TOXIPROXY_BIN}" ]]; then
  echo "${TOXIPROXY_BIN}"
  exit 0
fi
echo "ensure-toxiproxy: building toxiproxy ${TOXIPROXY_VERSION} with go install (once; cached in ${CACHE_DIR})" >&2
# Build into a temporary folder and move into place, so an interrupted build never
# leaves a half-written binary that a later run would trust.
tmp="$(mktemp -d "${CACHE_DIR}/.build.XXXXXX")"
trap 'rm -rf "${tmp}"' EXIT
CGO_ENABLED=0 GOBIN="${tmp}" go install -trimpath -ldflags "-s -w" \
  "github.com/Shopify/toxiproxy/v2/cmd/server@${TOXIPROXY_VERSION}" >&2
mv "${tmp}/server" "${TOXIPROXY_BIN}"
echo "${TOXIPROXY_BIN}"
