# A team runs services on an EC2 cluster of nine instances over three zones: kubecs places
# each task itself, as ECS would (spread over zones by default, memberOf and
# distinctInstance, binpack), and says in ECS's words when a task cannot be placed.
fresh_namespace e2e-placement
NS=e2e-placement
all_nodes_cluster $NS prod
app_taskdef $NS app
wait_until "app:1 registered" 60 field_eq taskdefinitions app '{.status.latestRevision}' 1 $NS

# 1. Default strategy: spread on availability zone -> 2 tasks per zone.
kubectl apply -f - <<'YAML'
apiVersion: ecs.kubecs.io/v1alpha1
kind: Service
metadata: {name: spread, namespace: e2e-placement}
spec: {cluster: prod, taskDefinition: app, desiredCount: 6}
YAML
wait_until "spread runs 6 tasks" 90 rollout_is $NS spread app:1 COMPLETED 6
zones="$(service_pods $NS spread | while read -r _ node _ _; do node_label "$node" topology.kubernetes.io/zone; echo; done | sort | uniq -c | awk '{print $1}' | tr '\n' ' ')"
expect_eq "two tasks in each of three zones" "2 2 2 " "$zones"
service_events $NS spread | grep -qE '^\(service spread\) has started 6 tasks: (\(task spread-[a-z0-9]+\) ?){6}\.$' || fail "no 'has started 6 tasks' event: $(service_events $NS spread)"
service_events $NS spread | grep -qF "(service spread) has reached a steady state." || fail "no steady state event"
expect_eq "Ready condition" SteadyState "$(jp services.ecs.kubecs.io spread '{.status.conditions[?(@.type=="Ready")].reason}' $NS)"

# 2. memberOf with the query language + distinctInstance: one task per m5.xlarge.
kubectl apply -f - <<'YAML'
apiVersion: ecs.kubecs.io/v1alpha1
kind: Service
metadata: {name: big, namespace: e2e-placement}
spec:
  cluster: prod
  taskDefinition: app
  desiredCount: 3
  placementConstraints:
    - {type: memberOf, expression: "attribute:ecs.instance-type =~ m5.* and not(attribute:ecs.instance-type == m5.large)"}
    - {type: distinctInstance}
YAML
wait_until "big runs 3 tasks" 90 rollout_is $NS big app:1 COMPLETED 3
types="$(service_pods $NS big | while read -r _ node _ _; do node_label "$node" node.kubernetes.io/instance-type; echo; done | sort | uniq -c | awk '{print $1":"$2}' | tr '\n' ' ')"
expect_eq "only m5.xlarge" "3:m5.xlarge " "$types"
expect_eq "three distinct instances" 3 "$(service_pods $NS big | awk '{print $2}' | sort -u | wc -l | tr -d ' ')"

# A fourth task has nowhere to go: ECS's event, and Degraded.
kubectl scale services.ecs.kubecs.io big -n $NS --replicas=4
wait_until "an unable-to-place event" 60 bash -c "kubectl get services.ecs.kubecs.io big -n $NS -o jsonpath='{.status.events[*].message}' | grep -qF '(service big) was unable to place a task because no container instance met all of its requirements. The closest matching (container-instance '"
wait_until "Degraded UnableToPlaceTask" 30 field_eq services.ecs.kubecs.io big '{.status.conditions[?(@.type=="Degraded")].reason}' UnableToPlaceTask $NS
expect_eq "still 3 tasks" 3 "$(service_pods $NS big | wc -l | tr -d ' ')"
kubectl scale services.ecs.kubecs.io big -n $NS --replicas=3

# 3. binpack on memory within one zone: both tasks on the instance with the least memory
#    that still fits (the t3.medium).
kubectl apply -f - <<'YAML'
apiVersion: ecs.kubecs.io/v1alpha1
kind: Service
metadata: {name: packed, namespace: e2e-placement}
spec:
  cluster: prod
  taskDefinition: app
  desiredCount: 2
  placementConstraints:
    - {type: memberOf, expression: "attribute:ecs.availability-zone == us-east-1c"}
  placementStrategy:
    - {type: binpack, field: memory}
YAML
wait_until "packed runs 2 tasks" 90 rollout_is $NS packed app:1 COMPLETED 2
nodes="$(service_pods $NS packed | awk '{print $2}' | sort -u)"
expect_eq "one instance" 1 "$(wc -l <<<"$nodes" | tr -d ' ')"
expect_eq "the t3.medium of us-east-1c" "t3.medium us-east-1c" "$(node_label "$nodes" node.kubernetes.io/instance-type) $(node_label "$nodes" topology.kubernetes.io/zone)"

# 4. FARGATE: no instance management; kube-scheduler places the tasks with a zone spread.
kubectl apply -f - <<'YAML'
apiVersion: ecs.kubecs.io/v1alpha1
kind: TaskDefinition
metadata: {name: serverless, namespace: e2e-placement}
spec:
  requiresCompatibilities: [FARGATE]
  networkMode: awsvpc
  cpu: "256"
  memory: "512"
  containerDefinitions:
    - {name: app, image: "public.ecr.aws/nginx/nginx:1.27"}
---
apiVersion: ecs.kubecs.io/v1alpha1
kind: Service
metadata: {name: serverless, namespace: e2e-placement}
spec: {cluster: prod, taskDefinition: serverless, desiredCount: 3, launchType: FARGATE}
---
apiVersion: ecs.kubecs.io/v1alpha1
kind: Service
metadata: {name: wrong-type, namespace: e2e-placement}
spec: {cluster: prod, taskDefinition: app, desiredCount: 1, launchType: FARGATE}
YAML
wait_until "serverless runs 3 tasks" 90 rollout_is $NS serverless serverless:1 COMPLETED 3
kubectl get pods -n $NS -l ecs.kubecs.io/service=serverless -o jsonpath='{.items[0].spec.topologySpreadConstraints[0].topologyKey}' | grep -qx topology.kubernetes.io/zone || fail "no zone spread"
echo "FARGATE zones: $(service_pods $NS serverless | while read -r _ node _ _; do node_label "$node" topology.kubernetes.io/zone; echo -n ' '; done)"
wait_until "an EC2-only revision is refused for FARGATE" 60 field_eq services.ecs.kubecs.io wrong-type '{.status.conditions[?(@.type=="Ready")].message}' "Task definition does not support launch_type FARGATE." $NS
kubectl delete services.ecs.kubecs.io serverless wrong-type -n $NS

# The cluster's counts come alive.
wait_until "cluster counts 11 running tasks" 60 field_eq ecsclusters prod '{.status.runningTasksCount}' 11 $NS
expect_eq "active services" 3 "$(jp ecsclusters prod '{.status.activeServicesCount}' $NS)"
kubectl get services.ecs.kubecs.io -n $NS
kubectl delete services.ecs.kubecs.io --all -n $NS --wait=true --timeout=60s
wait_until "tasks gone" 60 bash -c "[ -z \"\$(kubectl get pods -n $NS -o name)\" ]"
kubectl delete ecscluster prod -n $NS --timeout=60s
