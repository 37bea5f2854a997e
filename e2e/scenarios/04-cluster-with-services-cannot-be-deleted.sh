# A user deletes a cluster that still runs a service: ECS refuses; kubecs holds the deletion
# with the reason in status until the service is gone, then releases the instances.
fresh_namespace e2e-deletion
kubectl apply -f - <<'YAML'
apiVersion: ecs.kubecs.io/v1alpha1
kind: EcsCluster
metadata: {name: prod, namespace: e2e-deletion}
spec:
  instanceSelector:
    matchLabels: {topology.kubernetes.io/zone: us-east-1c}
---
apiVersion: ecs.kubecs.io/v1alpha1
kind: Service
metadata: {name: web, namespace: e2e-deletion}
spec: {cluster: prod, taskDefinition: web, desiredCount: 0}
YAML
wait_until "prod registers 3 instances" 60 field_eq ecsclusters prod '{.status.registeredContainerInstancesCount}' 3 e2e-deletion
wait_until "prod counts its service" 60 field_eq ecsclusters prod '{.status.activeServicesCount}' 1 e2e-deletion
kubectl delete ecscluster prod -n e2e-deletion --wait=false
wait_until "deletion is blocked with the reason" 60 field_eq ecsclusters prod '{.status.conditions[?(@.type=="Ready")].reason}' DeletionBlocked e2e-deletion
msg="$(jp ecsclusters prod '{.status.conditions[?(@.type=="Ready")].message}' e2e-deletion)"
grep -qF "The Cluster cannot be deleted while Services are active." <<<"$msg" || fail "reason: $msg"
expect_eq "status" DEPROVISIONING "$(jp ecsclusters prod '{.status.status}' e2e-deletion)"
kubectl get events -n e2e-deletion --field-selector reason=DeletionBlocked -o name | grep -q . || fail "no DeletionBlocked event"
sleep 3
kubectl get ecscluster prod -n e2e-deletion >/dev/null || fail "the cluster went away while a service used it"
kubectl delete service.ecs.kubecs.io web -n e2e-deletion
wait_until "the cluster is deleted" 60 bash -c '! kubectl get ecscluster prod -n e2e-deletion'
for n in kwok-node-07 kwok-node-08 kwok-node-09; do
  expect_eq "$n released" "" "$(kubectl get node $n -o 'jsonpath={.metadata.annotations.ecs\.kubecs\.io/cluster}')"
done
kubectl delete namespace e2e-deletion --wait=false
