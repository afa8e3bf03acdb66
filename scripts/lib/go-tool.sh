# Sourced by the scripts/ensure-*.sh of the tools built from their Go modules (helm,
# Toxiproxy, Jaeger, Centrifugo): one cache layout, one lock, one atomic move for all.
#
#   go_tool_ensure NAME VERSION BINARY BUILD_FUNCTION
#
# prints the path of ~/.cache/roomcast/NAME/VERSION/BINARY (ROOMCAST_CACHE or
# XDG_CACHE_HOME move it), calling BUILD_FUNCTION DIR first when it is not built yet;
# BUILD_FUNCTION must leave DIR/BINARY behind. A binary is cached per version, so later
# runs (and CI on the same machine) reuse it.

go_tool_ensure() {
  local name="$1" version="$2" binary="$3" build="$4"
  local cache_dir="${ROOMCAST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/roomcast}/${name}/${version}"
  local bin="${cache_dir}/${binary}"
  if [[ -x "${bin}" ]]; then
    echo "${bin}"
    return 0
  fi
  if ! command -v go >/dev/null 2>&1; then
    local candidate
    for candidate in /usr/local/go/bin/go /usr/lib/go/bin/go; do
      if [[ -x "${candidate}" ]]; then
        PATH="$(dirname "${candidate}"):${PATH}"
        break
      fi
    done
  fi
  if ! command -v go >/dev/null 2>&1; then
    echo "ensure-${name}: Go 1.24 or newer is needed to build ${name} ${version} (from go.dev; Debian 12's golang-go is too old)" >&2
    return 1
  fi
  mkdir -p "${cache_dir}"
  # One build at a time: a second caller waits for the first and then reuses its binary.
  exec 9>"${cache_dir}/.lock"
  flock 9
  if [[ -x "${bin}" ]]; then
    echo "${bin}"
    return 0
  fi
  echo "ensure-${name}: building ${name} ${version} (once; cached in ${cache_dir})" >&2
  # Build into a temporary folder and move into place, so an interrupted build never
  # leaves a half-written binary that a later run would trust.
  _go_tool_tmp="$(mktemp -d "${cache_dir}/.build.XXXXXX")"
  trap 'rm -rf "${_go_tool_tmp}"' EXIT
  "${build}" "${_go_tool_tmp}" >&2
  mv "${_go_tool_tmp}/${binary}" "${bin}"
  echo "${bin}"
}
