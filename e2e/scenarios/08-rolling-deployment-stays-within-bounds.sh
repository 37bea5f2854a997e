# A team rolls a new revision out to a service of 4 tasks with minimumHealthyPercent 50 and
# maximumPercent 150: a watch on the API server sees at most 6 tasks and at least 2 healthy
# ones at every event, and the rollout ends COMPLETED with 4 tasks of the new revision.
fresh_namespace e2e-rolling
NS=e2e-rolling
all_nodes_cluster $NS default
bounded_service $NS web
first="$(jp services.ecs.kubecs.io web '{.status.deployments[0].id}' $NS)"

start_watch $NS web --max-tasks 6 --min-healthy 2
app_taskdef $NS web "" 1024   # a new revision: more memory
wait_until "web:2 registered" 60 field_eq taskdefinitions web '{.status.latestRevision}' 2 $NS
wait_until "a new PRIMARY deployment" 60 field_eq services.ecs.kubecs.io web '{.status.deployments[0].taskDefinition}' web:2 $NS
wait_until "web:2 COMPLETED with 4 tasks" 120 rollout_is $NS web web:2 COMPLETED 4
stop_watch

expect_eq "one deployment left" 1 "$(jp services.ecs.kubecs.io web '{.status.deployments[*].id}' $NS | wc -w | tr -d ' ')"
[ "$(jp services.ecs.kubecs.io web '{.status.deployments[0].id}' $NS)" != "$first" ] || fail "no new deployment id"
label="$(jp services.ecs.kubecs.io web '{.status.deployments[0].id}' $NS | sed 's|.*/||')"
# Once steady, AZ rebalancing (on by default for a zone-spread service) may start a task in
# the emptiest zone and then stop one in the fullest: wait for the service to settle.
only_new_tasks() {
  local new all
  new="$(service_pods $NS web | awk -v d="$label" '$3 == d' | wc -l | tr -d ' ')"
  all="$(service_pods $NS web | wc -l | tr -d ' ')"
  [ "$new $all" = "4 4" ] || { echo "tasks of the new deployment, all tasks: $new, $all"; return 1; }
}
wait_until "4 tasks, all of the new deployment, and no other" 60 only_new_tasks
expect_eq "rolloutStateReason" "ECS deployment $(jp services.ecs.kubecs.io web '{.status.deployments[0].id}' $NS) completed." "$(jp services.ecs.kubecs.io web '{.status.deployments[0].rolloutStateReason}' $NS)"
service_events $NS web | grep -qF "deployment completed." || fail "no completion event"

# kubectl scale works through the scale subresource; scale-in is not a deployment.
kubectl scale services.ecs.kubecs.io web -n $NS --replicas=2
wait_until "scaled in to 2" 60 rollout_is $NS web web:2 COMPLETED 2
expect_eq "same deployment" "$label" "$(jp services.ecs.kubecs.io web '{.status.deployments[0].id}' $NS | sed 's|.*/||')"
kubectl get --raw "/apis/ecs.kubecs.io/v1alpha1/namespaces/$NS/services/web/scale" | grep -q '"selector":"ecs.kubecs.io/service=web"' || fail "scale subresource has no selector"
kubectl delete namespace $NS --wait=false
