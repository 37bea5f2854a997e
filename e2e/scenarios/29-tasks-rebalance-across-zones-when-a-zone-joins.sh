# A team's service runs 3 tasks on instances in two zones (2 and 1). Instances join a third
# zone: ECS's Availability Zone rebalancing (ENABLED by default) starts a task there, waits
# until it is healthy, then stops one in the fullest zone, and the zones end 1/1/1, with
# ECS's rebalancing events. A service with availabilityZoneRebalancing DISABLED stays as it
# is.
NS=e2e-rebalance
fresh_namespace $NS
kubectl apply -f - <<YAML
apiVersion: ecs.kubecs.io/v1alpha1
kind: EcsCluster
metadata: {name: zonal, namespace: $NS}
spec:
  instanceSelector:
    matchLabels: {type: kwok, node.kubernetes.io/instance-type: m5.large}
    matchExpressions: [{key: topology.kubernetes.io/zone, operator: In, values: [us-east-1a, us-east-1b]}]
YAML
wait_until "zonal registers 2 instances" 60 field_eq ecsclusters zonal '{.status.registeredContainerInstancesCount}' 2 $NS
app_taskdef $NS web
wait_until "web:1 registered" 60 field_eq taskdefinitions web '{.status.latestRevision}' 1 $NS
kubectl apply -f - <<YAML
apiVersion: ecs.kubecs.io/v1alpha1
kind: Service
metadata: {name: web, namespace: $NS}
spec: {cluster: zonal, taskDefinition: web, desiredCount: 3}
---
apiVersion: ecs.kubecs.io/v1alpha1
kind: Service
metadata: {name: still, namespace: $NS}
spec: {cluster: zonal, taskDefinition: web, desiredCount: 3, availabilityZoneRebalancing: DISABLED}
YAML
# zones SERVICE: its live tasks per zone, "a b c" counts in zone order.
zones() {
  local out="" z
  for z in us-east-1a us-east-1b us-east-1c; do
    out+="$(kubectl get pods -n $NS -l "ecs.kubecs.io/service=$1" -o jsonpath='{range .items[*]}{.spec.nodeName} {.metadata.deletionTimestamp}{"\n"}{end}' \
      | while read -r node deleting; do [ -z "$deleting" ] && node_label "$node" topology.kubernetes.io/zone && echo; done | awk -v z="$z" '$0 == z {n++} END {print n + 0}') "
  done
  echo "${out% }"
}
zones_are() { local z; z="$(zones "$1")"; [ "$z" = "$2" ] || { echo "$1: tasks per zone '$z', not '$2'"; return 1; }; }
steady() { field_eq services.ecs.kubecs.io "$1" '{.status.conditions[?(@.type=="Ready")].reason}' SteadyState $NS; }
for s in web still; do
  wait_until "$s steady on two zones" 90 steady $s
done
first_web="$(zones web)"; first_still="$(zones still)"
case "$first_web" in "2 1 0"|"1 2 0") ;; *) fail "web should run 2/1 on two zones, runs $first_web" ;; esac
case "$first_still" in "2 1 0"|"1 2 0") ;; *) fail "still should run 2/1 on two zones, runs $first_still" ;; esac
expect_eq "balanced on two zones: nothing to do" "" "$(jp services.ecs.kubecs.io web '{.status.azRebalancingInProgress}' $NS)"

# The third zone joins.
kubectl patch ecscluster zonal -n $NS --type merge -p '{"spec":{"instanceSelector":{"matchExpressions":[{"key":"topology.kubernetes.io/zone","operator":"In","values":["us-east-1a","us-east-1b","us-east-1c"]}]}}}'
wait_until "zonal registers 3 instances" 60 field_eq ecsclusters zonal '{.status.registeredContainerInstancesCount}' 3 $NS
wait_until "web rebalanced to 1/1/1" 120 zones_are web "1 1 1"
wait_until "web steady again" 60 steady web
events="$(service_events $NS web)"
printf "web's events, newest first:\n%s\n" "$events"
long="$( [ "$first_web" = "2 1 0" ] && echo us-east-1a || echo us-east-1b )"
for want in "service (web) is not AZ balanced with ${first_web%% *} tasks in us-east-1a, $(cut -d' ' -f2 <<<"$first_web") in us-east-1b, and 0 in us-east-1c. AZ Rebalancing in progress." \
            "web has started 1 tasks in us-east-1c to AZ Rebalance: " \
            "web has stopped 1 running tasks in $long due to AZ rebalancing: " \
            "service (web) is AZ balanced with 1 tasks in us-east-1a, 1 tasks in us-east-1b, and 1 tasks in us-east-1c."; do
  grep -F -- "$want" <<<"$events" >/dev/null || fail "no event '$want' in: $events"
done
# Start before stop (events are newest first).
started_line="$(grep -nF "to AZ Rebalance" <<<"$events" | cut -d: -f1)"
stopped_line="$(grep -nF "due to AZ rebalancing" <<<"$events" | cut -d: -f1)"
[ "$stopped_line" -lt "$started_line" ] || fail "the stop came before the start: $events"
expect_eq "web: rebalancing over" "" "$(jp services.ecs.kubecs.io web '{.status.azRebalancingInProgress}' $NS)"
# The DISABLED service was reconciled on the same instance changes and stays as it was.
expect_eq "still keeps its zones" "$first_still" "$(zones still)"
expect_eq "still reports DISABLED" DISABLED "$(jp services.ecs.kubecs.io still '{.status.availabilityZoneRebalancing}' $NS)"
expect_eq "web reports ENABLED" ENABLED "$(jp services.ecs.kubecs.io web '{.status.availabilityZoneRebalancing}' $NS)"
kubectl delete services.ecs.kubecs.io web still -n $NS
kubectl delete ecscluster zonal -n $NS --timeout=60s
kubectl delete namespace $NS --wait=false
