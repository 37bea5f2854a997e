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
stop_watch
label="$(jp services.ecs.kubecs.io web '{.status.deployments[0].id}' $NS | sed 's|.*/||')"
expect_eq "exactly 4 tasks, all of the final deployment" "4 4" "$(service_pods $NS web | wc -l | tr -d ' ') $(service_pods $NS web | awk -v d="$label" '$3 == d' | wc -l | tr -d ' ')"
orphans="$(kubectl get pods -n $NS -o jsonpath='{range .items[*]}{.metadata.name} {.metadata.ownerReferences[0].kind}{"\n"}{end}' | awk '$2 != "Service"')"
expect_eq "no orphan pod" "" "$orphans"
kubectl delete namespace $NS --wait=false
