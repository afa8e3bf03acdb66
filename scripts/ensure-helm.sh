#!/usr/bin/env bash
# Prints the path of the pinned helm CLI, building it from its Go module on first use.
# The binary is cached per version, so later runs (and CI on the same machine) reuse it.
set -euo pipefail

HELM_VERSION="${HELM_VERSION:-v3.22.0}"
CACHE_DIR="${ROOMCAST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/roomcast}/helm/${HELM_VERSION}"
HELM_BIN="${CACHE_DIR}/helm"

if [[ -x "${HELM_BIN}" ]]; then
  echo "${HELM_BIN}"
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
  echo "ensure-helm: the Go toolchain is needed to build helm ${HELM_VERSION} (apt-get install golang-go, or a Go from go.dev)" >&2
  exit 1
fi

mkdir -p "${CACHE_DIR}"
# One build at a time: a second caller waits for the first and then reuses its binary.
exec 9>"${CACHE_DIR}/.lock"
flock 9
if [[ -x "${HELM_BIN}" ]]; then
  echo "${HELM_BIN}"
  exit 0
fi
echo "ensure-helm: building helm ${HELM_VERSION} with go install (once; cached in ${CACHE_DIR})" >&2
# helm's own release build stamps the Kubernetes version it was made against (client-go
# v0.N -> 1.N) for `helm template` and lint's deprecation checks; do the same.
gomod="$(go mod download -json "helm.sh/helm/v3@${HELM_VERSION}" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
k8s_minor="$(awk '$1 == "k8s.io/client-go" { print $2 }' "${gomod}" | cut -d. -f2)"
ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=${HELM_VERSION}"
for pkg in pkg/lint/rules pkg/chartutil; do
  ldflags+=" -X helm.sh/helm/v3/${pkg}.k8sVersionMajor=1 -X helm.sh/helm/v3/${pkg}.k8sVersionMinor=${k8s_minor}"
done
# Build into a temporary folder and move into place, so an interrupted build never
# leaves a half-written binary that a later run would trust.
tmp="$(mktemp -d "${CACHE_DIR}/.build.XXXXXX")"
trap 'rm -rf "${tmp}"' EXIT
CGO_ENABLED=0 GOBIN="${tmp}" go install -trimpath -ldflags "${ldflags}" "helm.sh/helm/v3/cmd/helm@${HELM_VERSION}" >&2
mv "${tmp}/helm" "${HELM_BIN}"
echo "${HELM_BIN}"
