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
kubectl delete namespace e2e-taskdefs --wait=false
