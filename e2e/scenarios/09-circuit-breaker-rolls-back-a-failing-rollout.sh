# A team deploys a revision whose container exits at once: the deployment circuit breaker
# trips at ECS's threshold (4 tasks -> 3 failures), marks the rollout FAILED in ECS's words,
# and rolls back to the last COMPLETED revision.
fresh_namespace e2e-breaker
NS=e2e-breaker
all_nodes_cluster $NS default
bounded_service $NS api "deploymentCircuitBreaker: {enable: true, rollback: true}"
good="$(jp services.ecs.kubecs.io api '{.status.deployments[0].id}' $NS)"
start_watch $NS api --max-tasks 6   # tasks that crash count as healthy while RUNNING, as in ECS
app_taskdef $NS api fail 512 3   # api:2 exits with code 3
wait_until "api:2 registered" 60 field_eq taskdefinitions api '{.status.latestRevision}' 2 $NS
wait_until "the breaker trips" 120 bash -c "kubectl get services.ecs.kubecs.io api -n $NS -o jsonpath='{.status.events[*].message}' | grep -qF 'deployment failed: tasks failed to start.'"
wait_until "rolled back to api:1, COMPLETED" 120 rollout_is $NS api api:1 COMPLETED 4
stop_watch
# The rollback's own breaker watched it to completion, at ECS's threshold for 4 tasks.
expect_eq "circuitBreaker of the rollback" "MONITORING_COMPLETE 3" \
  "$(jp services.ecs.kubecs.io api '{.status.deployments[0].circuitBreaker.status} {.status.deployments[0].circuitBreaker.threshold}' $NS)"
events="$(service_events $NS api)"
grep -qF "rolling back to deployment $good." <<<"$events" || fail "no rollback event: $events"
grep -qE '\(service api\) \(deployment ecs-svc/[0-9]+\) deployment failed: tasks failed to start\.' <<<"$events" || fail "no failure event"
expect_eq "requested is still api:2" api:2 "$(jp services.ecs.kubecs.io api '{.status.requestedTaskDefinition}' $NS)"
reason="$(jp services.ecs.kubecs.io api '{.status.stoppedTasks[?(@.stopCode=="EssentialContainerExited")].stoppedReason}' $NS | tr ' ' '\n' | sort -u | tr '\n' ' ')"
grep -qF "Essential container in task exited" <<<"$(jp services.ecs.kubecs.io api '{.status.stoppedTasks[?(@.stopCode=="EssentialContainerExited")].stoppedReason}' $NS)" || fail "no stopped task with ECS's reason: $reason"
jp services.ecs.kubecs.io api '{.status.stoppedTasks[*].exitCodes[*]}' $NS | grep -q "app=3" || fail "exit code 3 not reported"
failed="$(kubectl get events -n $NS --field-selector reason=ServiceWarning -o jsonpath='{.items[*].message}')"
grep -qF "deployment failed" <<<"$failed" || fail "no Warning event: $failed"
# It does not try api:2 again by itself.
sleep 5
expect_eq "still api:1" api:1 "$(jp services.ecs.kubecs.io api '{.status.deployments[0].taskDefinition}' $NS)"
kubectl delete namespace $NS --wait=false
