# A team's rollout is stuck (its tasks keep exiting; no circuit breaker). They find it in the
# service's deployment history (`kubectl get servicedeployments`), stop it as
# StopServiceDeployment does (`ecs.kubecs.io/stop-deployment`), and the service rolls back
# to the last successful deployment. The history keeps every deployment with ECS's states:
# SUCCESSFUL, then ROLLBACK_IN_PROGRESS and ROLLBACK_SUCCESSFUL for the stopped one, with its
# rollback naming the revision it returned to.
NS=e2e-history
fresh_namespace $NS
all_nodes_cluster $NS default
bounded_service $NS api
first="$(jp services.ecs.kubecs.io api '{.status.deployments[0].id}' $NS)"
record() { echo "api-${1#ecs-svc/}"; }
wait_until "the first deployment's record is SUCCESSFUL" 30 field_eq servicedeployments "$(record "$first")" '{.status.status}' SUCCESSFUL $NS
expect_eq "its record names its revision and service" "api:1 api $first" \
  "$(jp servicedeployments "$(record "$first")" '{.spec.targetServiceRevision.taskDefinition} {.spec.service} {.spec.deploymentId}' $NS)"

app_taskdef $NS api fail 512 3   # api:2 exits with code 3
wait_until "api:2 registered" 60 field_eq taskdefinitions api '{.status.latestRevision}' 2 $NS
second_started() { local d; d="$(jp services.ecs.kubecs.io api '{.status.deployments[0].id} {.status.deployments[0].taskDefinition}' $NS)"; [ "${d#* }" = api:2 ] || { echo "PRIMARY: $d"; return 1; }; }
wait_until "a deployment of api:2" 60 second_started
second="$(jp services.ecs.kubecs.io api '{.status.deployments[0].id}' $NS)"
wait_until "the stuck deployment's record is IN_PROGRESS" 30 field_eq servicedeployments "$(record "$second")" '{.status.status}' IN_PROGRESS $NS
# Its tasks keep failing: it stays in progress.
failing() { jp services.ecs.kubecs.io api '{.status.deployments[0].failedTasks}' $NS | grep -qE '^[2-9]|^[1-9][0-9]'; }
wait_until "api:2's tasks fail" 90 failing
kubectl get servicedeployments -n $NS

kubectl annotate services.ecs.kubecs.io api -n $NS "ecs.kubecs.io/stop-deployment=$second" --overwrite >/dev/null
rolled_back() { field_eq servicedeployments "$(record "$second")" '{.status.status}' ROLLBACK_SUCCESSFUL $NS; }
wait_until "the stopped deployment's rollback succeeds" 120 rolled_back
wait_until "api:1 runs again, COMPLETED" 60 rollout_is $NS api api:1 COMPLETED 4
expect_eq "the rollback names the revision it returned to" \
  "arn:aws:ecs:kubecs:$NS:service-revision/default/api/${first#ecs-svc/}" \
  "$(jp servicedeployments "$(record "$second")" '{.status.rollback.serviceRevisionArn}' $NS)"
expect_eq "and why" "Service deployment stopped by request: rolling back." \
  "$(jp servicedeployments "$(record "$second")" '{.status.rollback.reason}' $NS)"
[ -n "$(jp servicedeployments "$(record "$second")" '{.status.finishedAt}' $NS)" ] || fail "no finishedAt"
service_events $NS api | grep -qF "(service api) (deployment $second) was stopped by request." || fail "no stop event: $(service_events $NS api | head -n 5)"
# A rollback is part of the stopped deployment: no record of its own.
expect_eq "two records" 2 "$(kubectl get servicedeployments -n $NS -l ecs.kubecs.io/service=api -o name | wc -l | tr -d ' ')"
kubectl get servicedeployments -n $NS -o wide
# The history goes with its service.
kubectl delete services.ecs.kubecs.io api -n $NS --wait=false >/dev/null
no_records() { [ -z "$(kubectl get servicedeployments -n $NS -o name)" ]; }
wait_until "the history is garbage-collected with the service" 90 no_records
