#!/usr/bin/env bash
# Prints the path of the pinned helm CLI, building it from its Go module on first use.
set -euo pipefail
source "$(dirname "$0")/lib/go-tool.sh"

HELM_VERSION="${HELM_VERSION:-v3.22.0}"

build() {
  # helm's own release build stamps the Kubernetes version it was made against (client-go
  # v0.N -> 1.N) for `helm template` and lint's deprecation checks; do the same.
  local gomod k8s_minor ldflags pkg
  gomod="$(go mod download -json "helm.sh/helm/v3@${HELM_VERSION}" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
  k8s_minor="$(awk '$1 == "k8s.io/client-go" { print $2 }' "${gomod}" | cut -d. -f2)"
  ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=${HELM_VERSION}"
  for pkg in pkg/lint/rules pkg/chartutil; do
    ldflags+=" -X helm.sh/helm/v3/${pkg}.k8sVersionMajor=1 -X helm.sh/helm/v3/${pkg}.k8sVersionMinor=${k8s_minor}"
  done
  CGO_ENABLED=0 GOBIN="$1" go install -trimpath -ldflags "${ldflags}" "helm.sh/helm/v3/cmd/helm@${HELM_VERSION}"
}

go_tool_ensure helm "${HELM_VERSION}" helm build
