# A user creates an ECS cluster that claims the three KWOK nodes of one zone; a second cluster that
# selects an overlapping node reports the conflict instead of stealing it.
fresh_namespace e2e-clusters
kubectl apply -f - <<'YAML'
apiVersion: ecs.kubecs.io/v1alpha1
kind: EcsCluster
metadata: {name: east-a, namespace: e2e-clusters}
spec:
  instanceSelector:
    matchLabels: {topology.kubernetes.io/zone: us-east-1a, type: kwok}
YAML
wait_until "east-a registers 3 instances" 60 field_eq ecsclusters east-a '{.status.registeredContainerInstancesCount}' 3 e2e-clusters
expect_eq "status" ACTIVE "$(jp ecsclusters east-a '{.status.status}' e2e-clusters)"
expect_eq "Ready" True "$(jp ecsclusters east-a '{.status.conditions[?(@.type=="Ready")].status}' e2e-clusters)"
# Registered resources come from allocatable: m5.large is 2 vCPU / 8 GiB.
expect_eq "m5.large registered cpu" 2048 "$(jp ecsclusters east-a '{.status.containerInstances[?(@.instanceType=="m5.large")].registeredResources.cpu}' e2e-clusters)"
expect_eq "m5.large registered memory" 8192 "$(jp ecsclusters east-a '{.status.containerInstances[?(@.instanceType=="m5.large")].registeredResources.memory}' e2e-clusters)"
for n in kwok-node-01 kwok-node-02 kwok-node-03; do
  expect_eq "$n claimed" e2e-clusters/east-a "$(kubectl get node $n -o 'jsonpath={.metadata.annotations.ecs\.kubecs\.io/cluster}')"
done

kubectl apply -f - <<'YAML'
apiVersion: ecs.kubecs.io/v1alpha1
kind: EcsCluster
metadata: {name: large, namespace: e2e-clusters}
spec:
  instanceSelector:
    matchLabels: {node.kubernetes.io/instance-type: m5.large}
YAML
wait_until "large reports the conflict" 60 field_eq ecsclusters large '{.status.conditions[?(@.type=="Degraded")].reason}' ContainerInstanceConflict e2e-clusters
expect_eq "large registered" 2 "$(jp ecsclusters large '{.status.registeredContainerInstancesCount}' e2e-clusters)"
expect_eq "conflicting node" kwok-node-01 "$(jp ecsclusters large '{.status.conflictingInstances[0].ec2InstanceId}' e2e-clusters)"
expect_eq "held by" e2e-clusters/east-a "$(jp ecsclusters large '{.status.conflictingInstances[0].claimedBy}' e2e-clusters)"
kubectl get ecsclusters -n e2e-clusters
# The first cluster still holds its three.
expect_eq "east-a still has 3" 3 "$(jp ecsclusters east-a '{.status.registeredContainerInstancesCount}' e2e-clusters)"

# Narrowing the selector deregisters the instances it no longer matches.
kubectl patch ecscluster east-a -n e2e-clusters --type merge -p '{"spec":{"instanceSelector":{"matchLabels":{"topology.kubernetes.io/zone":"us-east-1a","node.kubernetes.io/instance-type":"t3.medium","type":"kwok"}}}}'
wait_until "east-a shrinks to 1" 60 field_eq ecsclusters east-a '{.status.registeredContainerInstancesCount}' 1 e2e-clusters
# ...and the freed m5.large node goes to the cluster that wanted it.
wait_until "large takes the freed node" 60 field_eq ecsclusters large '{.status.registeredContainerInstancesCount}' 3 e2e-clusters
kubectl delete ecscluster --all -n e2e-clusters --timeout=60s
for n in kwok-node-01 kwok-node-02 kwok-node-03 kwok-node-04; do
  expect_eq "$n released" "" "$(kubectl get node $n -o 'jsonpath={.metadata.annotations.ecs\.kubecs\.io/cluster}')"
done
