# A user brings real-world ECS task definitions (e2e/taskdefs) unchanged: each is accepted
# by the API server as a TaskDefinition, and the pod `kubecs render` prints for it is accepted
# too (server-side dry-run create).
fresh_namespace e2e-render
for f in "$E2E_DIR"/taskdefs/*.json; do
  name="$(basename "$f" .json)"
  taskdef_object "$f" "$name" e2e-render > "$WORK/td-$name.json"
  kubectl apply -f "$WORK/td-$name.json" >/dev/null || fail "$name refused by the API server"
  "$KUBECS_BIN" render "$f" -n e2e-render -o json > "$WORK/pod-$name.json" 2>"$WORK/render-$name.err" \
    || fail "kubecs render $name failed: $(cat "$WORK/render-$name.err")"
  # The task role becomes the pod's ServiceAccount: create it as the user would.
  sa="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["spec"].get("serviceAccountName",""))' "$WORK/pod-$name.json")"
  [ -n "$sa" ] && kubectl create serviceaccount "$sa" -n e2e-render >/dev/null 2>&1 || true
  out="$(kubectl create --dry-run=server -n e2e-render -f "$WORK/pod-$name.json" 2>&1)" \
    || fail "the API server refused the pod rendered from $name: $out"
  echo "ok: $name"
done
kubectl delete namespace e2e-render --wait=false
