# Helpers for scenarios. A scenario is a bash file run with `set -e`; any failing command
# or `fail` fails it. Scenarios assert on what the API server holds.

fail() { echo "FAIL: $*" >&2; exit 1; }

# wait_until DESCRIPTION SECONDS CMD...: retry CMD until it succeeds.
wait_until() {
  local what="$1" secs="$2"; shift 2
  local deadline=$(( $(date +%s) + secs ))
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -ge "$deadline" ] && { echo "timed out after ${secs}s waiting for: $what" >&2; return 1; }
    sleep 0.5
  done
}

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
field_eq() { [ "$(jp "$1" "$2" "$3" "${5:-default}")" = "$4" ]; }

# fresh_namespace NAME: a new empty namespace for a scenario.
fresh_namespace() {
  kubectl delete namespace "$1" --ignore-not-found --wait=true --timeout=60s >/dev/null 2>&1 || true
  kubectl create namespace "$1" >/dev/null
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
