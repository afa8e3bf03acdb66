#!/usr/bin/env bash
# Prints the path of the pinned Toxiproxy server, building it from its Go module on first
# use. The network tests put it between their clients and the services.
set -euo pipefail
source "$(dirname "$0")/lib/go-tool.sh"

TOXIPROXY_VERSION="${TOXIPROXY_VERSION:-v2.5.0}"

build() {
  CGO_ENABLED=0 GOBIN="$1" go install -trimpath -ldflags "-s -w" \
    "github.com/Shopify/toxiproxy/v2/cmd/server@${TOXIPROXY_VERSION}"
  mv "$1/server" "$1/toxiproxy-server"
}

go_tool_ensure toxiproxy "${TOXIPROXY_VERSION}" toxiproxy-server build
