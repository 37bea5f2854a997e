# The operator is SIGKILLed five times during a rollout: every restart resumes from what the
# API server holds; the watch sees no bound violated, the rollout ends COMPLETED, and no
# task is left that no deployment owns.
fresh_namespace e2e-crash
NS=e2e-crash
all_nodes_cluster $NS default
bounded_service $NS web
start_watch $NS web --max-tasks 6 --min-healthy 2
app_taskdef $NS web "" 1024
for i in 1 2 3 4 5; do
  sleep "0.$((RANDOM % 9 + 1))"
  kill_operator
  echo "killed the operator ($i)"
  start_operator
done
wait_until "web:2 COMPLETED with 4 tasks" 120 rollout_is $NS web web:2 COMPLETED 4
# COMPLETED is not the end: restarts mid-rollout can leave the tasks unevenly spread over the
# zones, and AZ rebalancing then starts a fifth task in the short zone before it stops the
# excess one. The service is done when it is steady with exactly its 4 tasks, all of the
# final deployment (an operator that over-launched never gets there).
final_tasks() {
  local label; label="$(jp services.ecs.kubecs.io web '{.status.deployments[0].id}' $NS | sed 's|.*/||')"
  local ready; ready="$(jp services.ecs.kubecs.io web '{.status.conditions[?(@.type=="Ready")].reason}' $NS)"
  local got; got="$(service_pods $NS web | wc -l | tr -d ' ') $(service_pods $NS web | awk -v d="$label" '$3 == d' | wc -l | tr -d ' ') $ready"
  [ "$got" = "4 4 SteadyState" ] || { echo "tasks, of the final deployment, Ready reason: $got"; service_events $NS web | head -n 5; return 1; }
}
wait_until "steady with exactly 4 tasks, all of the final deployment" 120 final_tasks
stop_watch
echo "the service's latest events:"; service_events $NS web | head -n 5
orphans="$(kubectl get pods -n $NS -o jsonpath='{range .items[*]}{.metadata.name} {.metadata.ownerReferences[0].kind}{"\n"}{end}' | awk '$2 != "Service"')"
expect_eq "no orphan pod" "" "$orphans"
kubectl delete namespace $NS --wait=false
