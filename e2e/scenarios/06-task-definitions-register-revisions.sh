# A user registers task definitions: each applies as a TaskDefinition, registers revision 1,
# then 2 after an edit, as ECS numbers them; deregistering a revision marks it INACTIVE.
fresh_namespace e2e-taskdefs
kubectl apply -f - <<'YAML'
apiVersion: ecs.kubecs.io/v1alpha1
kind: TaskDefinition
metadata: {name: web, namespace: e2e-taskdefs}
spec:
  family: web
  containerDefinitions:
    - {name: web, image: "nginx:1.27", memory: 256, portMappings: [{containerPort: 80}]}
YAML
wait_until "revision 1" 60 field_eq taskdefinitions web '{.status.latestRevision}' 1 e2e-taskdefs
kubectl get controllerrevision web-1 -n e2e-taskdefs >/dev/null
expect_eq "arn" "arn:aws:ecs:kubecs:e2e-taskdefs:task-definition/web:1" "$(jp taskdefinitions web '{.status.taskDefinitionArn}' e2e-taskdefs)"
# Re-applying the same definition registers nothing new.
kubectl annotate taskdefinition web -n e2e-taskdefs touched=yes >/dev/null
sleep 2
expect_eq "still revision 1" 1 "$(jp taskdefinitions web '{.status.latestRevision}' e2e-taskdefs)"
kubectl patch taskdefinition web -n e2e-taskdefs --type json -p '[{"op":"replace","path":"/spec/containerDefinitions/0/image","value":"nginx:1.28"}]'
wait_until "revision 2" 60 field_eq taskdefinitions web '{.status.latestRevision}' 2 e2e-taskdefs
expect_eq "revision 1 keeps its image" "nginx:1.27" "$(kubectl get controllerrevision web-1 -n e2e-taskdefs -o 'jsonpath={.data.containerDefinitions[0].image}')"
kubectl annotate controllerrevision web-1 -n e2e-taskdefs ecs.kubecs.io/status=INACTIVE >/dev/null
wait_until "revision 1 INACTIVE" 60 field_eq taskdefinitions web '{.status.revisions[?(@.revision==1)].status}' INACTIVE e2e-taskdefs
expect_eq "revision 2 ACTIVE" ACTIVE "$(jp taskdefinitions web '{.status.revisions[?(@.revision==2)].status}' e2e-taskdefs)"
kubectl get taskdefinitions -n e2e-taskdefs

# The corpus of real-world task definitions registers revision 1, then 2 after an edit.
for f in "$E2E_DIR"/taskdefs/*.json; do
  name="$(basename "$f" .json)"
  taskdef_object "$f" "$name" e2e-taskdefs > "$WORK/td-$name.json"
  kubectl apply -f "$WORK/td-$name.json" >/dev/null || fail "$name refused by the API server"
  wait_until "$name revision 1" 60 field_eq taskdefinitions "$name" '{.status.latestRevision}' 1 e2e-taskdefs \
    || fail "$name: $(jp taskdefinitions "$name" '{.status.conditions}' e2e-taskdefs)"
  kubectl patch taskdefinition "$name" -n e2e-taskdefs --type merge -p '{"spec":{"tags":[{"key":"edited","value":"yes"}]}}' >/dev/null
  wait_until "$name revision 2" 60 field_eq taskdefinitions "$name" '{.status.latestRevision}' 2 e2e-taskdefs
  echo "ok: $name"
done

# Rules the schema cannot hold are checked by the controller: Ready=False with ECS's message,
# a Warning event, and no revision registered.
kubectl apply -f - <<'YAML'
apiVersion: ecs.kubecs.io/v1alpha1
kind: TaskDefinition
metadata: {name: odd-size, namespace: e2e-taskdefs}
spec:
  requiresCompatibilities: [FARGATE]
  networkMode: awsvpc
  cpu: "512"
  memory: "512"
  containerDefinitions:
    - {name: app, image: "nginx:1.27"}
YAML
wait_until "odd-size refused" 60 field_eq taskdefinitions odd-size '{.status.conditions[?(@.type=="Ready")].status}' False e2e-taskdefs
msg="$(jp taskdefinitions odd-size '{.status.conditions[?(@.type=="Ready")].message}' e2e-taskdefs)"
grep -qF "No Fargate configuration exists for given values." <<<"$msg" || fail "odd-size: $msg"
expect_eq "no revision" "" "$(jp taskdefinitions odd-size '{.status.latestRevision}' e2e-taskdefs)"
# Over 64 KiB: ECS's length message.
python3 - "$WORK/td-huge.json" <<'PY'
import json, sys
env = [{"name": f"VAR_{i}", "value": "x" * 200} for i in range(330)]
json.dump({"apiVersion": "ecs.kubecs.io/v1alpha1", "kind": "TaskDefinition",
           "metadata": {"name": "huge", "namespace": "e2e-taskdefs"},
           "spec": {"containerDefinitions": [{"name": "app", "image": "nginx:1.27", "memory": 128, "environment": env}]}},
          open(sys.argv[1], "w"))
PY
kubectl apply -f "$WORK/td-huge.json" >/dev/null
wait_until "huge refused" 60 field_eq taskdefinitions huge '{.status.conditions[?(@.type=="Ready")].status}' False e2e-taskdefs
msg="$(jp taskdefinitions huge '{.status.conditions[?(@.type=="Ready")].message}' e2e-taskdefs)"
grep -qE "Actual length: '[0-9]+'. Max allowed length is '65536' bytes." <<<"$msg" || fail "huge: $msg"

# A service cannot start on an INACTIVE revision (ECS's rule); the latest ACTIVE one works.
kubectl apply -f - <<'YAML'
apiVersion: ecs.kubecs.io/v1alpha1
kind: Service
metadata: {name: old-web, namespace: e2e-taskdefs}
spec: {cluster: default, taskDefinition: "web:1", desiredCount: 0}
YAML
kubectl apply -f - <<'YAML'
apiVersion: ecs.kubecs.io/v1alpha1
kind: EcsCluster
metadata: {name: default, namespace: e2e-taskdefs}
spec:
  instanceSelector: {matchLabels: {no-such-label: x}}
YAML
wait_until "web:1 refused as INACTIVE" 60 field_eq services.ecs.kubecs.io old-web '{.status.conditions[?(@.type=="Ready")].reason}' TaskDefinitionInactive e2e-taskdefs
jp services.ecs.kubecs.io old-web '{.status.conditions[?(@.type=="Ready")].message}' e2e-taskdefs | grep -qF "TaskDefinition is inactive" || fail "inactive message"
kubectl patch services.ecs.kubecs.io old-web -n e2e-taskdefs --type merge -p '{"spec":{"taskDefinition":"web"}}'
wait_until "web resolves to web:2" 60 field_eq services.ecs.kubecs.io old-web '{.status.taskDefinition}' web:2 e2e-taskdefs
kubectl delete services.ecs.kubecs.io old-web -n e2e-taskdefs
kubectl delete ecscluster default -n e2e-taskdefs --timeout=60s
kubectl delete namespace e2e-taskdefs --wait=false
