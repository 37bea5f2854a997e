# A team's container starts but never passes its health check: ECS stops the task with
# "Task failed container health checks" once interval × retries has passed (after the
# service's healthCheckGracePeriodSeconds) and starts a replacement.
fresh_namespace e2e-health
NS=e2e-health
all_nodes_cluster $NS default
kubectl apply -f - <<'YAML'
apiVersion: ecs.kubecs.io/v1alpha1
kind: TaskDefinition
metadata: {name: sick, namespace: e2e-health}
spec:
  networkMode: awsvpc
  cpu: "256"
  memory: "512"
  containerDefinitions:
    - name: app
      image: public.ecr.aws/nginx/nginx:1.27
      dockerLabels: {kwok.kubecs.io/behavior: unhealthy}
      healthCheck: {command: ["CMD-SHELL", "curl -f http://localhost/ || exit 1"], interval: 5, timeout: 2, retries: 1}
---
apiVersion: ecs.kubecs.io/v1alpha1
kind: Service
metadata: {name: sick, namespace: e2e-health}
spec: {taskDefinition: sick, desiredCount: 1, healthCheckGracePeriodSeconds: 3}
YAML
wait_until "sick:1 registered" 60 field_eq taskdefinitions sick '{.status.latestRevision}' 1 $NS
# health_stopped: the id of a task stopped for its health checks whose ECS event is written.
# Any such task will do: by the time status is read, a replacement may have failed too.
health_stopped() {
  local ids id
  ids="$(kubectl get services.ecs.kubecs.io sick -n $NS -o jsonpath='{range .status.stoppedTasks[?(@.stoppedReason=="Task failed container health checks")]}{.taskId}{"\n"}{end}')"
  [ -n "$ids" ] || { echo "no task stopped for its health checks yet; stoppedTasks: $(jp services.ecs.kubecs.io sick '{.status.stoppedTasks}' $NS)"; return 1; }
  for id in $ids; do
    service_events $NS sick | grep -qF "(service sick) (task $id) failed container health checks." && { echo "$id"; return 0; }
  done
  echo "stopped for health checks: $ids; but no event names one: $(service_events $NS sick)"; return 1
}
wait_until "a task stopped for its health checks, with its event" 90 health_stopped
first="$(health_stopped)"
replacement() { kubectl get pods -n $NS -l ecs.kubecs.io/service=sick -o jsonpath='{range .items[*]}{.metadata.name}{"\n"}{end}' | grep -v -x "$first" | grep -q .; }
wait_until "a replacement of task $first" 60 replacement
expect_eq "the deployment counts it" 1 "$(jp services.ecs.kubecs.io sick '{.status.deployments[0].failedTasks}' $NS | awk '{print ($1 >= 1)}')"
expect_eq "never healthy: not Ready" False "$(jp services.ecs.kubecs.io sick '{.status.conditions[?(@.type=="Ready")].status}' $NS)"
