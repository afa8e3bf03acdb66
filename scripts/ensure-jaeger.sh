#!/usr/bin/env bash
# Prints the path of the pinned Jaeger v2 binary, building it from its Go module on first use.
set -euo pipefail
source "$(dirname "$0")/lib/go-tool.sh"

JAEGER_VERSION="${JAEGER_VERSION:-v1.76.0}"
JAEGER_PKG="github.com/jaegertracing/jaeger/cmd/jaeger"

build() {
  # Jaeger's go.mod carries replace directives, which `go install pkg@version` refuses; a
  # throwaway module that requires it as a tool resolves the same versions and builds it.
  cd "$1"
  go mod init roomcast.local/jaeger-build >/dev/null 2>&1
  go get -tool "${JAEGER_PKG}@${JAEGER_VERSION}"
  CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$1/jaeger" "${JAEGER_PKG}"
}

go_tool_ensure jaeger "${JAEGER_VERSION}" jaeger build
