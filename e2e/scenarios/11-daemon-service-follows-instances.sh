# A team runs a log agent as a DAEMON service: one task on each container instance of the
# cluster; instances that join get one, instances that leave lose theirs.
fresh_namespace e2e-daemon
NS=e2e-daemon
kubectl apply -f - <<'YAML'
apiVersion: ecs.kubecs.io/v1alpha1
kind: EcsCluster
metadata: {name: agents, namespace: e2e-daemon}
spec:
  instanceSelector: {matchLabels: {topology.kubernetes.io/zone: us-east-1a, type: kwok}}
YAML
wait_until "agents registers 3 instances" 60 field_eq ecsclusters agents '{.status.registeredContainerInstancesCount}' 3 $NS
app_taskdef $NS agent
wait_until "agent:1 registered" 60 field_eq taskdefinitions agent '{.status.latestRevision}' 1 $NS
kubectl apply -f - <<'YAML'
apiVersion: ecs.kubecs.io/v1alpha1
kind: Service
metadata: {name: agent, namespace: e2e-daemon}
spec: {cluster: agents, taskDefinition: agent, schedulingStrategy: DAEMON}
YAML
on_zone_nodes() { # ZONE: one agent task on each node of the zone(s), and nowhere else
  local want got
  want="$(kubectl get nodes -o json | python3 -c '
import json, sys
zones = sys.argv[1].split(",")
print(" ".join(sorted(n["metadata"]["name"] for n in json.load(sys.stdin)["items"] if n["metadata"]["labels"].get("topology.kubernetes.io/zone") in zones and n["metadata"]["labels"].get("type") == "kwok")))' "$1")"
  got="$(service_pods $NS agent | awk '$4 == "True" {print $2}' | sort | tr '\n' ' ' | sed 's/ $//')"
  [ "$want" = "$got" ] && [ "$(service_pods $NS agent | wc -l | tr -d ' ')" = "$(wc -w <<<"$want" | tr -d ' ')" ]
}
wait_until "one task per us-east-1a instance" 90 on_zone_nodes us-east-1a
# Instances join: the cluster now takes zone b too. (KWOK nodes only: the real node of
# us-east-1a would have to pull this public image.)
kubectl patch ecscluster agents -n $NS --type merge -p '{"spec":{"instanceSelector":{"matchLabels":{"topology.kubernetes.io/zone":null,"type":"kwok"},"matchExpressions":[{"key":"topology.kubernetes.io/zone","operator":"In","values":["us-east-1a","us-east-1b"]}]}}}'
wait_until "one task per instance of both zones" 90 on_zone_nodes us-east-1a,us-east-1b
# Instances leave: back to zone a.
kubectl patch ecscluster agents -n $NS --type merge -p '{"spec":{"instanceSelector":{"matchExpressions":null,"matchLabels":{"topology.kubernetes.io/zone":"us-east-1a","type":"kwok"}}}}'
wait_until "the zone-b tasks stop" 90 on_zone_nodes us-east-1a
# A drained (cordoned) instance loses its task.
node="$(service_pods $NS agent | awk 'NR == 1 {print $2}')"
kubectl cordon "$node"
drained_gone() { ! service_pods $NS agent | awk '{print $2}' | grep -x "$node"; }
wait_until "the drained instance's task stops" 60 drained_gone
kubectl uncordon "$node"
wait_until "it comes back" 60 on_zone_nodes us-east-1a
# Status is written after the pods: wait for it rather than read it once.
wait_until "desired follows the instances" 30 field_eq services.ecs.kubecs.io agent '{.status.desiredCount}' 3 $NS
kubectl delete services.ecs.kubecs.io agent -n $NS
kubectl delete ecscluster agents -n $NS --timeout=60s
kubectl delete namespace $NS --wait=false
