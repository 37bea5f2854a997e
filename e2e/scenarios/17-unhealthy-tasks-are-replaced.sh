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
wait_until "a task stopped for its health checks" 90 field_eq services.ecs.kubecs.io sick '{.status.stoppedTasks[0].stoppedReason}' "Task failed container health checks" $NS
first="$(jp services.ecs.kubecs.io sick '{.status.stoppedTasks[0].taskId}' $NS)"
service_events $NS sick | grep -qF "(service sick) (task $first) failed container health checks." || fail "no health event: $(service_events $NS sick)"
wait_until "a replacement runs" 60 bash -c "kubectl get pods -n $NS -l ecs.kubecs.io/service=sick -o name | grep -v $first | grep -q ."
expect_eq "the deployment counts it" 1 "$(jp services.ecs.kubecs.io sick '{.status.deployments[0].failedTasks}' $NS | awk '{print ($1 >= 1)}')"
expect_eq "never healthy: not Ready" False "$(jp services.ecs.kubecs.io sick '{.status.conditions[?(@.type=="Ready")].status}' $NS)"
