#!/usr/bin/env bash
# Prints the path of the pinned Jaeger v2 binary, building it from its Go module on first use.
# The binary is cached per version, so later runs (and CI on the same machine) reuse it.
set -euo pipefail

JAEGER_VERSION="${JAEGER_VERSION:-v1.76.0}"
CACHE_DIR="${ROOMCAST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/roomcast}/jaeger/${JAEGER_VERSION}"
JAEGER_BIN="${CACHE_DIR}/jaeger"
JAEGER_PKG="github.com/jaegertracing/jaeger/cmd/jaeger"

if [[ -x "${JAEGER_BIN}" ]]; then
  echo "${JAEGER_BIN}"
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
  echo "ensure-jaeger: the Go toolchain is needed to build jaeger ${JAEGER_VERSION} (apt-get install golang-go, or a Go from go.dev)" >&2
  exit 1
fi

mkdir -p "${CACHE_DIR}"
# One build at a time: a second caller waits for the first and then reuses its binary.
exec 9>"${CACHE_DIR}/.lock"
flock 9
if [[ -x "${JAEGER_BIN}" ]]; then
  echo "${JAEGER_BIN}"
  exit 0
fi
echo "ensure-jaeger: building jaeger ${JAEGER_VERSION} (once, a few minutes; cached in ${CACHE_DIR})" >&2
# Jaeger's go.mod carries replace directives, which `go install pkg@version` refuses; a
# throwaway module that requires it as a tool resolves the same versions and builds it.
tmp="$(mktemp -d "${CACHE_DIR}/.build.XXXXXX")"
trap 'rm -rf "${tmp}"' EXIT
(
  cd "${tmp}"
  go mod init roomcast.local/jaeger-build >/dev/null 2>&1
  go get -tool "${JAEGER_PKG}@${JAEGER_VERSION}" >&2
  # Build into the temporary folder and move into place, so an interrupted build never
  # leaves a half-written binary that a later run would trust.
  CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "${tmp}/jaeger" "${JAEGER_PKG}" >&2
)
mv "${tmp}/jaeger" "${JAEGER_BIN}"
echo "${JAEGER_BIN}"
