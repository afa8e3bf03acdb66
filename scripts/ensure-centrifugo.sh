#!/usr/bin/env bash
# Prints the path of the pinned Centrifugo server (the benchmark's Go peer), building it
# from its Go module on first use. The binary is cached per version, so later runs reuse it.
set -euo pipefail

CENTRIFUGO_VERSION="${CENTRIFUGO_VERSION:-v6.9.1}"
CACHE_DIR="${ROOMCAST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/roomcast}/centrifugo/${CENTRIFUGO_VERSION}"
CENTRIFUGO_BIN="${CACHE_DIR}/centrifugo"

if [[ -x "${CENTRIFUGO_BIN}" ]]; then
  echo "${CENTRIFUGO_BIN}"
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
  echo "ensure-centrifugo: the Go toolchain is needed to build centrifugo ${CENTRIFUGO_VERSION} (apt-get install golang-go, or a Go from go.dev)" >&2
  exit 1
fi

mkdir -p "${CACHE_DIR}"
# One build at a time: a second caller waits for the first and then reuses its binary.
exec 9>"${CACHE_DIR}/.lock"
flock 9
if [[ -x "${CENTRIFUGO_BIN}" ]]; then
  echo "${CENTRIFUGO_BIN}"
  exit 0
fi
echo "ensure-centrifugo: building centrifugo ${CENTRIFUGO_VERSION} with go install (once; cached in ${CACHE_DIR})" >&2
# Build into a temporary folder and move into place, so an interrupted build never
# leaves a half-written binary that a later run would trust.
tmp="$(mktemp -d "${CACHE_DIR}/.build.XXXXXX")"
trap 'rm -rf "${tmp}"' EXIT
CGO_ENABLED=0 GOBIN="${tmp}" go install -trimpath \
  -ldflags "-s -w -X github.com/centrifugal/centrifugo/v6/internal/build.Version=${CENTRIFUGO_VERSION#v}" \
  "github.com/centrifugal/centrifugo/v6@${CENTRIFUGO_VERSION}" >&2
mv "${tmp}/centrifugo" "${CENTRIFUGO_BIN}"
echo "${CENTRIFUGO_BIN}"
