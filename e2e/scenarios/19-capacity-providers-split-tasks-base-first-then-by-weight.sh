# A team runs a service over two capacity providers: "on-demand" (the m5.large instances)
# and "spot" (the t3.medium ones), with ECS's own example strategy: base 2 and weight 1 on
# on-demand, weight 3 on spot. Ten tasks split 4/6 (base first, then by weight), each on
# its provider's instances; scaled in to 5 they keep the split of 5 (3/2). A RunTask without
# a launch type uses the cluster's default strategy, and a strategy naming a provider the
# cluster does not have is refused in ECS's words.
NS=e2e-capacity
fresh_namespace $NS
kubectl apply -f - <<YAML
apiVersion: ecs.kubecs.io/v1alpha1
kind: EcsCluster
metadata: {name: fleet, namespace: $NS}
spec:
  instanceSelector: {matchLabels: {type: kwok}}
  capacityProviders: [on-demand, spot]
  defaultCapacityProviderStrategy: [{capacityProvider: spot, weight: 1}]
---
apiVersion: ecs.kubecs.io/v1alpha1
kind: CapacityProvider
metadata: {name: on-demand, namespace: $NS}
spec: {instanceSelector: {matchLabels: {node.kubernetes.io/instance-type: m5.large}}}
---
apiVersion: ecs.kubecs.io/v1alpha1
kind: CapacityProvider
metadata: {name: spot, namespace: $NS}
spec: {instanceSelector: {matchLabels: {node.kubernetes.io/instance-type: t3.medium}}}
YAML
wait_until "fleet registers the 9 KWOK instances" 60 field_eq ecsclusters fleet '{.status.registeredContainerInstancesCount}' 9 $NS
app_taskdef $NS web
wait_until "web:1 registered" 60 field_eq taskdefinitions web '{.status.latestRevision}' 1 $NS
kubectl apply -f - <<YAML
apiVersion: ecs.kubecs.io/v1alpha1
kind: Service
metadata: {name: web, namespace: $NS}
spec:
  cluster: fleet
  taskDefinition: web
  desiredCount: 10
  capacityProviderStrategy:
    - {capacityProvider: on-demand, base: 2, weight: 1}
    - {capacityProvider: spot, weight: 3}
YAML
# by_provider SELECTOR: "provider instance-type" of each live task pod, counted.
by_provider() {
  local types; types="$(kubectl get nodes -o jsonpath='{range .items[*]}{.metadata.name} {.metadata.labels.node\.kubernetes\.io/instance-type}{"\n"}{end}')"
  kubectl get pods -n $NS -l "$1" -o jsonpath='{range .items[*]}{.metadata.labels.ecs\.kubecs\.io/capacity-provider} {.spec.nodeName} {.metadata.deletionTimestamp}{"\n"}{end}' \
    | while read -r provider node deleting; do
        [ -z "$deleting" ] && echo "$provider $(awk -v n="$node" '$1 == n {print $2}' <<<"$types")"
      done \
    | sort | uniq -c | awk '{print $2 "=" $1 "@" $3}' | tr '\n' ' ' | sed 's/ $//'
}
split_is() { # SELECTOR WANT
  local got; got="$(by_provider "$1")"
  [ "$got" = "$2" ] || { echo "tasks by provider: '$got', not '$2'"; return 1; }
}
wait_until "10 tasks running" 90 field_eq services.ecs.kubecs.io web '{.status.runningCount}' 10 $NS
wait_until "on-demand 4 on m5.large, spot 6 on t3.medium" 30 split_is ecs.kubecs.io/service=web "on-demand=4@m5.large spot=6@t3.medium"
kubectl scale services.ecs.kubecs.io web -n $NS --replicas=5
wait_until "scaled in to the split of 5" 90 split_is ecs.kubecs.io/service=web "on-demand=3@m5.large spot=2@t3.medium"

# RunTask without a launch type: the cluster's default strategy (spot).
kubectl apply -f - <<YAML
apiVersion: ecs.kubecs.io/v1alpha1
kind: Task
metadata: {name: batch, namespace: $NS}
spec: {cluster: fleet, taskDefinition: web, count: 3}
YAML
wait_until "the RunTask's 3 tasks on spot" 60 split_is ecs.kubecs.io/task=batch "spot=3@t3.medium"

# A provider the cluster was not given.
kubectl apply -f - <<YAML
apiVersion: ecs.kubecs.io/v1alpha1
kind: Service
metadata: {name: gpu, namespace: $NS}
spec:
  cluster: fleet
  taskDefinition: web
  desiredCount: 1
  capacityProviderStrategy: [{capacityProvider: gpu, weight: 1}]
YAML
wait_until "gpu is refused" 30 field_eq services.ecs.kubecs.io gpu '{.status.conditions[?(@.type=="Ready")].reason}' InvalidCapacityProviderStrategy $NS
expect_eq "ECS's message" "The specified capacity provider strategy cannot contain a capacity provider that is not associated with the cluster. Associate the capacity provider with the cluster or specify a valid capacity provider and try again." \
  "$(jp services.ecs.kubecs.io gpu '{.status.conditions[?(@.type=="Ready")].message}' $NS)"
expect_eq "no task for gpu" "" "$(kubectl get pods -n $NS -l ecs.kubecs.io/service=gpu -o name)"
kubectl delete services.ecs.kubecs.io web gpu -n $NS
kubectl delete tasks.ecs.kubecs.io batch -n $NS
kubectl delete ecscluster fleet -n $NS --timeout=60s
kubectl delete namespace $NS --wait=false
