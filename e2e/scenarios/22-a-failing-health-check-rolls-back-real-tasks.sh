# On a real node: a service whose CMD-SHELL health check runs inside the container (each
# probe appends to a file there, read back with kubectl exec). Revision 2's check can never
# pass: none of its tasks ever counts healthy (watch-verified), they are stopped for their
# health checks, the circuit breaker trips and the service rolls back to revision 1.
NS=e2e-real-health
fresh_namespace $NS
real_cluster $NS real
web_revision() { # READY-FILE: the file the health check tests
  kubectl apply -f - <<YAML
apiVersion: ecs.kubecs.io/v1alpha1
kind: TaskDefinition
metadata: {name: web, namespace: $NS}
spec:
  networkMode: awsvpc
  cpu: "256"
  memory: "128"
  containerDefinitions:
    - name: web
      image: $BUSYBOX_IMAGE
      entryPoint: [sh, -c]
      command: ["touch /tmp/ok; exec httpd -f -p 8080 -h /var/www"]
      stopTimeout: 2   # httpd as PID 1 ignores SIGTERM: do not wait the default 30 s
      healthCheck: {command: [CMD-SHELL, "echo probe >> /tmp/probes; test -f $1"], interval: 5, timeout: 2, retries: 2}
YAML
}
web_revision /tmp/ok
real_service $NS web 2 "{minimumHealthyPercent: 50, maximumPercent: 200, deploymentCircuitBreaker: {enable: true, rollback: true}}"
wait_until "web:1 COMPLETED with 2 healthy tasks" 120 rollout_is $NS web web:1 COMPLETED 2
good="$(jp services.ecs.kubecs.io web '{.status.deployments[0].id}' $NS)"
task="$(kubectl get pods -n $NS -l ecs.kubecs.io/service=web -o jsonpath='{.items[0].metadata.name}')"
probes="$(kubectl exec -n $NS "$task" -c web -- sh -c 'wc -l < /tmp/probes')"
echo "the health check ran $probes times inside $task"
[ "$probes" -ge 1 ] || fail "no probe ran in the container"
expect_eq "the task is HEALTHY" True "$(kubectl get pod "$task" -n $NS -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')"

start_watch $NS web --never-ready-revision 2
web_revision /tmp/never
wait_until "web:2 registered" 60 field_eq taskdefinitions web '{.status.latestRevision}' 2 $NS
wait_until "a web:2 deployment" 60 field_eq services.ecs.kubecs.io web '{.status.deployments[0].taskDefinition}' web:2 $NS
bad="$(jp services.ecs.kubecs.io web '{.status.deployments[0].id}' $NS)"
wait_until "the breaker trips" 180 bash -c "kubectl get services.ecs.kubecs.io web -n $NS -o jsonpath='{.status.events[*].message}' | grep -qF 'deployment failed: tasks failed to start.'"
wait_until "rolled back to web:1, COMPLETED" 120 rollout_is $NS web web:1 COMPLETED 2
stop_watch
events="$(service_events $NS web)"
grep -qF "rolling back to deployment $good." <<<"$events" || fail "no rollback event: $events"
stopped="$(jp services.ecs.kubecs.io web '{range .status.stoppedTasks[*]}{.deploymentId} {.stoppedReason}{"\n"}{end}' $NS)"
echo "$stopped"
grep -qxF "$bad Task failed container health checks" <<<"$stopped" || fail "no task of $bad (web:2) stopped for its health checks: $stopped"
revisions="$(kubectl get pods -n $NS -l ecs.kubecs.io/service=web -o jsonpath='{range .items[*]}{.metadata.labels.ecs\.kubecs\.io/revision}{"\n"}{end}' | sort -u)"
expect_eq "only web:1 tasks remain" 1 "$revisions"
