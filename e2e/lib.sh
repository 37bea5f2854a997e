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
# The kubecs registry that `e2e/cluster up` runs (the chart's ServiceAccount, Repository
# objects decide), the repository of the busybox test image, and how many real nodes.
REGISTRY="${KUBECS_E2E_REGISTRY:-127.0.0.1:15000}"
BUSYBOX_REPOSITORY=kubecs-e2e/busybox
REAL_NODE_COUNT="${KUBECS_E2E_REAL_NODES:-1}"
ENV_FILE="$RUN_DIR/env"

# free_port: a TCP port on 127.0.0.1 that nothing listens on now.
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# sa_kubeconfig NAMESPACE SA FILE [DURATION]: a kubeconfig of the e2e cluster whose user is a
# token of that ServiceAccount (default 24h).
sa_kubeconfig() {
  local token
  token="$(kubectl --kubeconfig "$KUBECONFIG_FILE" -n "$1" create token "$2" --duration="${4:-24h}")" || return 1
  kubectl --kubeconfig "$KUBECONFIG_FILE" config view --raw --minify -o json | python3 -c '
import json, sys
cfg = json.load(sys.stdin)
cfg["users"] = [{"name": sys.argv[1], "user": {"token": sys.argv[2]}}]
cfg["contexts"][0]["context"]["user"] = sys.argv[1]
json.dump(cfg, sys.stdout)' "$2" "$token" > "$3"
}

# retry_until DESCRIPTION SECONDS CMD...: run CMD every 0.5 s until it succeeds. On time-out,
# print what was awaited and CMD's last output (stdout and stderr), and fail.
retry_until() {
  local what="$1" secs="$2"; shift 2
  local deadline=$(( $(date +%s) + secs )) out
  until out="$("$@" 2>&1)"; do
    if [ "$(date +%s)" -ge "$deadline" ]; then
      printf 'timed out after %ss waiting for: %s\n  last output of `%s`:\n%s\n' "$secs" "$what" "$*" "$(printf '%s' "$out" | tail -n 20 | sed 's/^/    /')" >&2
      return 1
    fi
    sleep 0.5
  done
}

# install_chart: the CRDs and the chart (idempotent).
install_chart() {
  kubectl --kubeconfig "$KUBECONFIG_FILE" apply --server-side -f "$REPO_DIR/crds/" >/dev/null || return 1
  kubectl --kubeconfig "$KUBECONFIG_FILE" wait --for=condition=Established --timeout=60s -f "$REPO_DIR/crds/" >/dev/null || return 1
  helm --kubeconfig "$KUBECONFIG_FILE" upgrade --install kubecs "$REPO_DIR/charts/kubecs" -n kubecs-system \
    --create-namespace --wait=false >/dev/null
}

# The aws CLI and boto3 of the ECS/ECR API scenarios and the demo, from PyPI into a venv
# cached beside the other tools; pinned together (awscli pins its botocore range).
AWSCLI_VERSION=1.46.2
BOTO3_VERSION=1.44.8
AWS_VENV="$CACHE_ROOT/awscli-$AWSCLI_VERSION-boto3-$BOTO3_VERSION"
# pip_venv DIR REQUIREMENT...: a venv in DIR with the requirements from PyPI, made once.
# .installed is written last: an interrupted install is redone, not used.
pip_venv() {
  local dir="$1"; shift
  [ -e "$dir/.installed" ] && return 0
  log "installing $* (PyPI) into $dir"
  python3 -m venv --help >/dev/null 2>&1 || die "python3 venv is required (apt-get install python3-venv)"
  rm -rf "$dir"
  python3 -m venv "$dir"
  "$dir/bin/pip" install --quiet --disable-pip-version-check "$@" || return 1
  touch "$dir/.installed"
}
# aws_tools: installs them once; puts the venv's bin first on PATH (aws, python with boto3).
aws_tools() {
  pip_venv "$AWS_VENV" "awscli==$AWSCLI_VERSION" "boto3==$BOTO3_VERSION" || return 1
  export PATH="$AWS_VENV/bin:$PATH"
}

# start_api LOG REGISTRY KEY_FILE: `kubecs api` (the ECS and ECR APIs) on a free 127.0.0.1
# port as the chart runs it: as the chart's kubecs-api ServiceAccount (impersonation and the
# access-key Secrets only), its registry calls to REGISTRY. Sets API_PID and ECS_ENDPOINT.
start_api() {
  local port kubeconfig="$(dirname "$1")/api.kubeconfig"
  port="$(free_port)"
  sa_kubeconfig kubecs-system kubecs-api "$kubeconfig" 6h || return 1
  KUBECONFIG="$kubeconfig" RUST_LOG=info,kube_client=warn "${KUBECS_BIN:-$REPO_DIR/target/debug/kubecs}" api \
    --listen "127.0.0.1:$port" --key-namespace kubecs-system \
    --registry-url "http://$2" --registry-token-key-file "$3" >"$1" 2>&1 &
  API_PID=$!
  ECS_ENDPOINT="http://127.0.0.1:$port"
  retry_until "kubecs api on $ECS_ENDPOINT" 30 curl -sf -o /dev/null "$ECS_ENDPOINT/ready" || { tail -n 20 "$1" >&2; return 1; }
}

# The S3-compatible server of the registry's S3 runs (conformance, replicas): moto supports
# the S3 API the backend uses, multipart uploads and conditional PUTs (If-None-Match: *,
# If-Match) included. From PyPI into a venv cached beside the other tools.
MOTO_VERSION=5.2.5
MOTO_DIR="$CACHE_ROOT/moto-$MOTO_VERSION"
# start_moto LOG [PORT]: moto on 127.0.0.1 (PORT, or a free port) with an empty bucket
# kubecs-registry. Sets MOTO_PID and MOTO_ENDPOINT and exports credentials (moto takes any).
start_moto() {
  pip_venv "$MOTO_DIR" "moto[server]==$MOTO_VERSION" || return 1
  local port="${2:-}"
  [ -n "$port" ] || port="$(free_port)"
  "$MOTO_DIR/bin/moto_server" -H 127.0.0.1 -p "$port" >"$1" 2>&1 &
  MOTO_PID=$!
  MOTO_ENDPOINT="http://127.0.0.1:$port"
  retry_until "moto on $MOTO_ENDPOINT" 30 curl -sf -o /dev/null "$MOTO_ENDPOINT/" || return 1
  export AWS_ACCESS_KEY_ID=kubecs AWS_SECRET_ACCESS_KEY=kubecs AWS_REGION=us-east-1
  curl -sf -X PUT -o /dev/null "$MOTO_ENDPOINT/kubecs-registry" || { log "cannot create the bucket on moto"; return 1; }
}

# A real Prometheus Alertmanager for the alerting scenarios, built from its Go module into a
# cache directory keyed on the version (a pin change rebuilds).
ALERTMANAGER_VERSION=v0.35.0
ALERTMANAGER_MODULE=github.com/prometheus/alertmanager
ALERTMANAGER_CACHE="$CACHE_ROOT/alertmanager-$ALERTMANAGER_VERSION"
# alertmanager_bin: prints the path of the alertmanager binary, built once (logs on stderr only).
# Built in a temp dir and moved in, so a killed build never leaves a half binary in the cache.
# `go install $ALERTMANAGER_MODULE/cmd/alertmanager@$ALERTMANAGER_VERSION` fails ("pattern
# app/dist: no matching files found"): the module zip lacks the web UI, which is built by npm and
# go:embed-ded. So: the verified module source (go mod download), a placeholder for the UI (the
# e2e tests use the API only), then go build with the module's own go.mod/go.sum.
alertmanager_bin() {
  local bin="$ALERTMANAGER_CACHE/alertmanager" tmp src
  if [ ! -x "$bin" ]; then
    command -v go >/dev/null || { log "go is required to build alertmanager"; return 1; }
    log "building alertmanager $ALERTMANAGER_VERSION from its Go module (a cold build takes a few minutes)"
    mkdir -p "$ALERTMANAGER_CACHE" || return 1
    tmp="$(mktemp -d "$ALERTMANAGER_CACHE/.build.XXXXXX")" || return 1
    src="$(GOFLAGS=-mod=mod go mod download -json "$ALERTMANAGER_MODULE@$ALERTMANAGER_VERSION" |
      python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')" && [ -d "$src" ] &&
      cp -R "$src/." "$tmp/src" && chmod -R u+w "$tmp/src" && mkdir -p "$tmp/src/ui/app/dist" &&
      echo "web UI not built (kubecs e2e)" >"$tmp/src/ui/app/dist/NOT-BUILT.txt" &&
      (cd "$tmp/src" && GOWORK=off GOFLAGS=-mod=mod go build -trimpath -o "$tmp/alertmanager" \
        -ldflags "-s -w -X github.com/prometheus/common/version.Version=${ALERTMANAGER_VERSION#v}" ./cmd/alertmanager) >&2 &&
      mv "$tmp/alertmanager" "$bin" || { rm -rf "$tmp"; log "building alertmanager $ALERTMANAGER_VERSION failed"; return 1; }
    rm -rf "$tmp"
  fi
  printf '%s\n' "$bin"
}

# start_alertmanager LOG: alertmanager on a free 127.0.0.1 port (one receiver "null" without
# integrations, no cluster gossip, storage in a temp dir), output appended to LOG; waits until
# it is ready. Sets and exports ALERTMANAGER_PID and ALERTMANAGER_URL.
start_alertmanager() {
  local log_file="$1" bin port
  : >>"$log_file" || return 1
  bin="$(alertmanager_bin)" || return 1
  port="$(free_port)" || return 1
  ALERTMANAGER_TMP="$(mktemp -d)" || return 1
  cat >"$ALERTMANAGER_TMP/alertmanager.yml" <<'YAML'
route:
  receiver: "null"
  group_by: [alertname]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: "null"
YAML
  "$bin" --config.file="$ALERTMANAGER_TMP/alertmanager.yml" --storage.path="$ALERTMANAGER_TMP/data" \
    --web.listen-address="127.0.0.1:$port" --cluster.listen-address= >>"$log_file" 2>&1 &
  ALERTMANAGER_PID=$!
  ALERTMANAGER_URL="http://127.0.0.1:$port"
  export ALERTMANAGER_PID ALERTMANAGER_URL
  # Ready, or exited: a dead process fails at once instead of at the time-out.
  if ! retry_until "alertmanager ready on $ALERTMANAGER_URL" 60 \
      sh -c '! kill -0 "$1" 2>/dev/null || curl -sf -o /dev/null "$2/-/ready"' _ "$ALERTMANAGER_PID" "$ALERTMANAGER_URL" \
      || ! kill -0 "$ALERTMANAGER_PID" 2>/dev/null; then
    log "alertmanager did not become ready (pid $ALERTMANAGER_PID); last lines of $log_file:"
    tail -n 20 "$log_file" >&2
    stop_alertmanager
    return 1
  fi
}

# _alertmanager_post NAME ENDS_IN_SECONDS: POSTs alert NAME (severity critical) starting now and
# ending ENDS_IN_SECONDS from now (0: resolved now) to the alertmanager of start_alertmanager.
_alertmanager_post() {
  [ -n "${ALERTMANAGER_URL:-}" ] || { log "no alertmanager: call start_alertmanager first"; return 1; }
  python3 -c '
import datetime, json, sys
now = datetime.datetime.now(datetime.timezone.utc)
rfc3339 = lambda t: t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
json.dump([{"labels": {"alertname": sys.argv[1], "severity": "critical"},
            "startsAt": rfc3339(now),
            "endsAt": rfc3339(now + datetime.timedelta(seconds=int(sys.argv[2])))}], sys.stdout)' "$1" "$2" |
    curl -sS --fail-with-body -o /dev/null -X POST -H 'Content-Type: application/json' --data-binary @- \
      "$ALERTMANAGER_URL/api/v2/alerts"
}
# fire_alert NAME [SECONDS]: alert NAME (severity critical) firing from now for SECONDS (600).
fire_alert() { _alertmanager_post "$1" "${2:-600}"; }
# resolve_alert NAME: the same alert, resolved now (endsAt = now).
resolve_alert() { _alertmanager_post "$1" 0; }

# firing_alerts: the alertnames of the active (not silenced, not inhibited) alerts, one a line.
firing_alerts() {
  local body
  body="$(curl -sSf "$ALERTMANAGER_URL/api/v2/alerts?active=true&silenced=false&inhibited=false")" || return 1
  printf '%s' "$body" | python3 -c '
import json, sys
for a in json.load(sys.stdin):
    print(a["labels"].get("alertname", ""))'
}

# stop_alertmanager: kills ALERTMANAGER_PID if set, waits for it to exit, removes its temp dir.
stop_alertmanager() {
  if [ -n "${ALERTMANAGER_PID:-}" ]; then
    kill "$ALERTMANAGER_PID" 2>/dev/null || true
    wait "$ALERTMANAGER_PID" 2>/dev/null || true
    # Not our child (another shell started it): wait can't, so poll until it is gone.
    local i=0
    while kill -0 "$ALERTMANAGER_PID" 2>/dev/null && [ "$i" -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
    if kill -0 "$ALERTMANAGER_PID" 2>/dev/null; then kill -9 "$ALERTMANAGER_PID" 2>/dev/null || true; fi
  fi
  [ -z "${ALERTMANAGER_TMP:-}" ] || rm -rf "$ALERTMANAGER_TMP"
  unset ALERTMANAGER_PID ALERTMANAGER_URL ALERTMANAGER_TMP
}

# build_image LAYOUT TAG CONTENT [RANDOM_BYTES]: an image built from scratch with umoci (no
# daemon, no base image) into an OCI layout: /hello.txt holding CONTENT and, with
# RANDOM_BYTES, /random.bin in a second layer.
build_image() {
  local dir="$1" tag="$2" root
  root="$(mktemp -d)"
  printf '%s\n' "$3" > "$root/hello.txt"
  [ -f "$dir/index.json" ] || umoci init --layout "$dir"
  umoci new --image "$dir:$tag"
  umoci insert --rootless --image "$dir:$tag" "$root/hello.txt" /hello.txt
  if [ -n "${4:-}" ]; then
    head -c "$4" /dev/urandom > "$root/random.bin"
    umoci insert --rootless --image "$dir:$tag" "$root/random.bin" /random.bin
  fi
  umoci config --image "$dir:$tag" --config.cmd /hello.txt
  rm -rf "$root"
}

# The reference registry, distribution, built from its Go module (pinned): the peer of
# e2e/bench registry and the upstream of e2e/registry-pull-through.
DISTRIBUTION_MODULE=github.com/distribution/distribution/v3/cmd/registry
DISTRIBUTION_VERSION=v3.1.2
# distribution_bin: builds it into the cache once; prints its path.
distribution_bin() {
  local bin="$CACHE_ROOT/distribution-$DISTRIBUTION_VERSION/registry" gobin
  if [ ! -x "$bin" ]; then
    command -v go >/dev/null || { log "go is required to build distribution"; return 1; }
    log "building distribution $DISTRIBUTION_VERSION from its Go module"
    gobin="$(mktemp -d)"
    GOBIN="$gobin" GOFLAGS=-mod=mod go install -ldflags "-s -w" "$DISTRIBUTION_MODULE@$DISTRIBUTION_VERSION" >&2 || return 1
    mkdir -p "$(dirname "$bin")"
    mv "$gobin/registry" "$bin"
    rmdir "$gobin"
  fi
  printf '%s\n' "$bin"
}
