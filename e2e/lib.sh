# Shared settings of the e2e scripts. Source it; it only defines variables and functions.
E2E_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$E2E_DIR/.." && pwd)"
# shellcheck disable=SC1091
source "$E2E_DIR/versions.env"
# Built binaries live outside the checkout so a fresh clone (CI) reuses them; the key is the
# set of pinned versions plus the wrapper module, so a pin change rebuilds.
CACHE_ROOT="${KUBECS_E2E_CACHE:-$HOME/.cache/kubecs-e2e}"
TOOLS_KEY="$(cat "$E2E_DIR/versions.env" "$E2E_DIR/tools/go.mod" "$E2E_DIR/tools/go.sum" | sha256sum | cut -c1-16)"
BIN_DIR="$CACHE_ROOT/bin-$TOOLS_KEY"
RUN_DIR="${KUBECS_E2E_RUN_DIR:-$E2E_DIR/.cluster}"
KUBECONFIG_FILE="$RUN_DIR/kubeconfig"
ETCD_PORT="${KUBECS_E2E_ETCD_PORT:-23790}"
APISERVER_PORT="${KUBECS_E2E_APISERVER_PORT:-16443}"
export PATH="$BIN_DIR:$PATH"

log() { printf '[e2e %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
