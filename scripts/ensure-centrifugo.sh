#!/usr/bin/env bash
# Prints the path of the pinned Centrifugo server (the benchmark's Go peer), building it
# from its Go module on first use.
set -euo pipefail
source "$(dirname "$0")/lib/go-tool.sh"

CENTRIFUGO_VERSION="${CENTRIFUGO_VERSION:-v6.9.1}"

build() {
  CGO_ENABLED=0 GOBIN="$1" go install -trimpath \
    -ldflags "-s -w -X github.com/centrifugal/centrifugo/v6/internal/build.Version=${CENTRIFUGO_VERSION#v}" \
    "github.com/centrifugal/centrifugo/v6@${CENTRIFUGO_VERSION}"
}

go_tool_ensure centrifugo "${CENTRIFUGO_VERSION}" centrifugo build
