# Helpers for scenarios. A scenario is a bash file run with `set -e`; any failing command
# or `fail` fails it. Scenarios assert on what the API server holds.

fail() { echo "FAIL: $*" >&2; exit 1; }

# wait_until DESCRIPTION SECONDS CMD...: retry CMD until it succeeds; on time-out, print what
# was awaited and CMD's last output (retry_until in e2e/lib.sh).
wait_until() { retry_until "$@"; }

# jp KIND NAME JSONPATH [NAMESPACE]: one field of an object.
jp() { kubectl get "$1" "$2" -n "${4:-default}" -o "jsonpath=$3" 2>/dev/null; }

# expect_eq DESCRIPTION EXPECTED ACTUAL
expect_eq() { [ "$2" = "$3" ] || fail "$1: expected '$2', got '$3'"; }

# expect_refused MESSAGE < manifest: kubectl apply must fail and print MESSAGE.
expect_refused() {
  local out
  if out="$(kubectl apply -f - 2>&1)"; then fail "expected the API server to refuse it with: $1 (it accepted: $out)"; fi
  grep -qF -- "$1" <<<"$out" || fail "refused, but without '$1': $out"
  echo "refused as expected: $out"
}

# field_eq KIND NAME JSONPATH VALUE [NAMESPACE]: true when the field has the value.
# On a mismatch it prints the value it saw (wait_until shows the last one on time-out).
field_eq() {
  local v; v="$(jp "$1" "$2" "$3" "${5:-default}")"
  [ "$v" = "$4" ] || { echo "$1/$2 $3 is '$v', not '$4'"; return 1; }
}

# fresh_namespace NAME: a new empty namespace for a scenario.
fresh_namespace() {
  kubectl delete namespace "$1" --ignore-not-found --wait=true --timeout=60s >/dev/null 2>&1 || true
  kubectl create namespace "$1" >/dev/null
  # e2e/run deletes every labelled namespace after each scenario, passed or failed, so one
  # scenario's cluster never holds the instances the next one needs.
  kubectl label namespace "$1" kubecs-e2e=scenario >/dev/null
}

# taskdef_object FILE NAME NAMESPACE: an ECS task definition JSON (register input, or the
# describe output with its read-only fields) wrapped as a TaskDefinition object, on stdout.
taskdef_object() {
  python3 - "$1" "$2" "$3" <<'PY'
import json, sys
spec = json.load(open(sys.argv[1]))
spec = spec.get("taskDefinition", spec)
for ro in ("taskDefinitionArn", "revision", "status", "registeredAt", "registeredBy",
           "requiresAttributes", "compatibilities", "deregisteredAt"):
    spec.pop(ro, None)
print(json.dumps({"apiVersion": "ecs.kubecs.io/v1alpha1", "kind": "TaskDefinition",
                  "metadata": {"name": sys.argv[2], "namespace": sys.argv[3]}, "spec": spec}))
PY
}

# service_pods NS SERVICE: the service's task pods, one "name node deployment ready" per line.
service_pods() {
  kubectl get pods -n "$1" -l "ecs.kubecs.io/service=$2" -o \
    jsonpath='{range .items[*]}{.metadata.name} {.spec.nodeName} {.metadata.labels.ecs\.kubecs\.io/deployment} {.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}'
}

# rollout_is NS SERVICE TASKDEF STATE: the PRIMARY deployment runs TASKDEF in STATE.
rollout_is() {
  local v; v="$(jp services.ecs.kubecs.io "$2" '{.status.deployments[0].taskDefinition} {.status.deployments[0].rolloutState} {.status.runningCount}' "$1")"
  [ "$v" = "$3 $4 $5" ] || { echo "service $2: PRIMARY taskDefinition, rolloutState, runningCount are '$v', not '$3 $4 $5'"; return 1; }
}

# service_events NS SERVICE: the ECS-style events of a service, newest first.
service_events() { jp services.ecs.kubecs.io "$2" '{range .status.events[*]}{.message}{"\n"}{end}' "$1"; }

# node_label NODE LABEL: a node's label.
node_label() { kubectl get node "$1" -o "jsonpath={.metadata.labels.${2//./\\.}}"; }

# start_watch NS SERVICE ARGS...: watch-verify bounds in the background; stop_watch ends it.
start_watch() {
  local ns="$1" svc="$2"; shift 2
  WATCH_STOP="$(mktemp -u)"; WATCH_LOG="$(mktemp)"; WATCH_READY="$(mktemp -u)"
  python3 "$E2E_DIR/scenarios/watch_service.py" --namespace "$ns" --service "$svc" --stop "$WATCH_STOP" \
    --ready "$WATCH_READY" "$@" >"$WATCH_LOG" 2>&1 &
  WATCH_PID=$!
  # Armed only once it has listed: what happens from then on is seen.
  wait_until "the watch has listed" 30 test -e "$WATCH_READY" || { cat "$WATCH_LOG"; fail "the watch did not start"; }
}
stop_watch() {
  touch "$WATCH_STOP"
  local rc=0; wait "$WATCH_PID" || rc=$?
  cat "$WATCH_LOG"
  [ "$rc" = 0 ] || fail "the watch saw a violation"
}

# app_taskdef NS NAME [BEHAVIOR] [MEMORY]: a small awsvpc task definition; BEHAVIOR sets the
# KWOK behaviour (fail, complete, unhealthy) through a docker label.
app_taskdef() {
  local labels=""
  [ -n "${3:-}" ] && labels="dockerLabels: {kwok.kubecs.io/behavior: \"$3\", kwok.kubecs.io/exit-code: \"${5:-1}\"}"
  kubectl apply -f - <<YAML
apiVersion: ecs.kubecs.io/v1alpha1
kind: TaskDefinition
metadata: {name: $2, namespace: $1}
spec:
  networkMode: awsvpc
  requiresCompatibilities: [EC2]
  cpu: "256"
  memory: "${4:-512}"
  containerDefinitions:
    - name: app
      image: public.ecr.aws/nginx/nginx:1.27
      portMappings: [{containerPort: 80}]
      $labels
YAML
}

# typed_cluster NS NAME TYPE COUNT: an EcsCluster over the nodes labelled type=TYPE, once it
# has registered COUNT of them.
typed_cluster() {
  kubectl apply -f - <<YAML
apiVersion: ecs.kubecs.io/v1alpha1
kind: EcsCluster
metadata: {name: $2, namespace: $1}
spec:
  instanceSelector: {matchLabels: {type: $3}}
YAML
  wait_until "$2 registers $4 $3 instance(s)" 60 field_eq ecsclusters "$2" '{.status.registeredContainerInstancesCount}' "$4" "$1"
}

# all_nodes_cluster NS NAME: an EcsCluster over the nine KWOK instances, registered.
all_nodes_cluster() { typed_cluster "$1" "$2" kwok 9; }

# bounded_service NS NAME EXTRA: a service of 4 tasks of task definition NAME with
# minimumHealthyPercent 50 and maximumPercent 150, once COMPLETED. EXTRA is more
# deploymentConfiguration (e.g. a circuit breaker).
bounded_service() {
  app_taskdef "$1" "$2"
  wait_until "$2:1 registered" 60 field_eq taskdefinitions "$2" '{.status.latestRevision}' 1 "$1"
  kubectl apply -f - <<YAML
apiVersion: ecs.kubecs.io/v1alpha1
kind: Service
metadata: {name: $2, namespace: $1}
spec:
  taskDefinition: $2
  desiredCount: 4
  deploymentConfiguration: {minimumHealthyPercent: 50, maximumPercent: 150 ${3:+, $3}}
YAML
  wait_until "$2:1 COMPLETED with 4 tasks" 90 rollout_is "$1" "$2" "$2:1" COMPLETED 4
}

# blue_green_service NS NAME COUNT DEPLOYMENT-CONFIGURATION: a BLUE_GREEN service of task
# definition NAME behind a production and a test target group (core Services NAME-prod and
# NAME-test). DEPLOYMENT-CONFIGURATION is the rest of deploymentConfiguration, flow style;
# STRATEGY (LINEAR, CANARY) and ROUTE (productionListenerRule) may be set.
blue_green_service() {
  kubectl apply -f - <<YAML
apiVersion: ecs.kubecs.io/v1alpha1
kind: Service
metadata: {name: $2, namespace: $1}
spec:
  taskDefinition: $2
  desiredCount: $3
  deploymentConfiguration: {strategy: ${STRATEGY:-BLUE_GREEN}, $4}
  loadBalancers:
    - targetGroupArn: arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/$2-prod/73e2d6bc24d8a067
      containerName: app
      containerPort: 80
      advancedConfiguration:
        alternateTargetGroupArn: arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/$2-test/83e2d6bc24d8a068
        ${ROUTE:+productionListenerRule: $ROUTE}
YAML
}

# gateway_api_crds: installs Gateway API's standard CRDs (HTTPRoute...), pinned, from the Go
# module proxy (the module holds them as YAML; nothing is built).
GATEWAY_API_VERSION=v1.6.3
gateway_api_crds() {
  local dir
  dir="$(cd "$(mktemp -d)" && GOFLAGS=-mod=mod go mod download -json "sigs.k8s.io/gateway-api@$GATEWAY_API_VERSION" \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')" || return 1
  kubectl apply --server-side -f "$dir/config/crd/standard/gateway.networking.k8s.io_httproutes.yaml" >/dev/null
  wait_until "the HTTPRoute CRD established" 60 field_eq crd httproutes.gateway.networking.k8s.io '{.status.conditions[?(@.type=="Established")].status}' True
}

# ci_registry_token NS: a registry token of the ServiceAccount NS:ci (a pipeline's identity).
ci_registry_token() {
  "$KUBECS_BIN" registry-token --token-key-file "$E2E_REGISTRY_KEY" --user "system:serviceaccount:$1:ci" --group "system:serviceaccounts:$1"
}

# force_repositories NS: lets the namespace's Repositories go with their images (one with
# images holds its deletion, and its namespace's, until forced: ECR's
# RepositoryNotEmptyException). For a scenario's clean-up.
force_repositories() {
  local r
  for r in $(kubectl get repositories.ecr.kubecs.io -n "$1" -o name 2>/dev/null); do
    kubectl patch -n "$1" "$r" --type merge -p '{"spec":{"force":true}}' >/dev/null 2>&1 || true
  done
}

# release_finalizers NS: drops the registry's finalizer from the namespace's Repositories,
# for a scenario whose own registry is gone (stopped, or the scenario failed) so the
# namespace can be deleted.
release_finalizers() {
  local r
  for r in $(kubectl -n "$1" get repository -o name 2>/dev/null); do
    kubectl -n "$1" patch "$r" --type merge -p '{"metadata":{"finalizers":null}}' >/dev/null 2>&1 || true
  done
}

# repository_object NS NAME: the name of the Repository object of repository NAME in NS
# (fails while there is none).
repository_object() {
  kubectl get repositories.ecr.kubecs.io -n "$1" -o jsonpath='{range .items[*]}{.metadata.name} {.spec.repositoryName}{"\n"}{end}' \
    | awk -v want="$2" '$2 == want {print $1}' | grep .
}

# start_distribution ROOT ADDR LOG: distribution (built from its Go module) storing under
# ROOT, on ADDR, its log (access log included) in LOG; its pid in DISTRIBUTION_PID.
start_distribution() {
  local bin
  bin="$(distribution_bin)" || fail "distribution could not be built"
  mkdir -p "$1"
  printf 'version: 0.1\nlog: {level: warn}\nstorage: {filesystem: {rootdirectory: %s}}\nhttp: {addr: %s}\n' "$1" "$2" > "$1.yml"
  "$bin" serve "$1.yml" >"$3" 2>&1 &
  DISTRIBUTION_PID=$!
  wait_until "distribution on $2" 30 curl -sf -o /dev/null "http://$2/v2/"
}

# --- the real node (e2e/node): containers that really run ------------------------------------

# real_cluster NS NAME: an EcsCluster over the real nodes only (label type=real), registered.
real_cluster() {
  local n; n="$(wc -w <<<"$REAL_NODES" | tr -d ' ')"
  [ "$n" -ge 1 ] || fail "no real node in this cluster (REAL_NODES is empty)"
  typed_cluster "$1" "$2" real "$n"
}

# real_service NS NAME COUNT DEPLOYMENT-CONFIGURATION: a service of task definition NAME on
# the cluster "real", once NAME:1 is registered.
real_service() {
  wait_until "$2:1 registered" 60 field_eq taskdefinitions "$2" '{.status.latestRevision}' 1 "$1"
  kubectl apply -f - <<YAML
apiVersion: ecs.kubecs.io/v1alpha1
kind: Service
metadata: {name: $2, namespace: $1}
spec:
  cluster: real
  taskDefinition: $2
  desiredCount: $3
  deploymentConfiguration: $4
YAML
}

# task_pod NS TASK [INDEX]: the pod of a RunTask task (deterministic names: TASK-INDEX).
task_pod() { echo "$2-${3:-0}"; }

# container_field NS POD CONTAINER JSONPATH: a field of a container's status (regular or init).
container_field() {
  kubectl get pod "$2" -n "$1" -o json | python3 -c '
import json, sys
pod = json.load(sys.stdin)
st = pod.get("status", {})
for c in (st.get("containerStatuses") or []) + (st.get("initContainerStatuses") or []):
    if c["name"] == sys.argv[1]:
        cur = c
        for k in sys.argv[2].split("."):
            cur = cur.get(k, {}) if isinstance(cur, dict) else {}
        print(cur if cur != {} else "")
        break' "$3" "$4"
}

# marks NS POD CONTAINER WORD: the /proc/uptime seconds a container logged as "WORD T"
# (containers share the host's kernel, so one clock orders them to 10 ms).
marks() { kubectl logs -n "$1" "$2" -c "$3" 2>/dev/null | awk -v w="$4" '$1 == w {print $2; exit}'; }

# before A B: A <= B (decimal seconds).
before() { python3 -c 'import sys; sys.exit(0 if float(sys.argv[1]) <= float(sys.argv[2]) else 1)' "$1" "$2"; }
