# A team runs a batch job with RunTask, count 3: the tasks are placed (random, the RunTask
# default), run, and their containers' exit codes and ECS's stop reason appear in status.
# A run that cannot be placed reports ECS's failure instead.
fresh_namespace e2e-runtask
NS=e2e-runtask
all_nodes_cluster $NS batch
app_taskdef $NS job complete 512 3
wait_until "job:1 registered" 60 field_eq taskdefinitions job '{.status.latestRevision}' 1 $NS
kubectl apply -f - <<'YAML'
apiVersion: ecs.kubecs.io/v1alpha1
kind: Task
metadata: {name: nightly, namespace: e2e-runtask}
spec:
  cluster: batch
  taskDefinition: job:1
  count: 3
  startedBy: cron
  overrides:
    containerOverrides:
      - name: app
        environment: [{name: RUN, value: nightly}]
YAML
wait_until "3 tasks STOPPED" 90 field_eq tasks.ecs.kubecs.io nightly '{.status.lastStatus}' STOPPED $NS
expect_eq "3 tasks" 3 "$(jp tasks.ecs.kubecs.io nightly '{.status.tasks[*].taskId}' $NS | wc -w | tr -d ' ')"
expect_eq "exit codes" "3 3 3" "$(jp tasks.ecs.kubecs.io nightly '{.status.tasks[*].containers[0].exitCode}' $NS)"
reasons="$(jp tasks.ecs.kubecs.io nightly '{range .status.tasks[*]}{.stoppedReason}{"\n"}{end}' $NS | sort -u)"
expect_eq "stopped reason" "Essential container in task exited" "$reasons"
expect_eq "stop code" "EssentialContainerExited" "$(jp tasks.ecs.kubecs.io nightly '{.status.tasks[0].stopCode}' $NS)"
[ -n "$(jp tasks.ecs.kubecs.io nightly '{.status.tasks[0].containerInstance}' $NS)" ] || fail "no container instance"
expect_eq "task definition" job:1 "$(jp tasks.ecs.kubecs.io nightly '{.status.taskDefinition}' $NS)"
kubectl get pod nightly-0 -n $NS -o jsonpath='{.spec.containers[0].env}' | grep -q nightly || fail "override not applied"

# A run whose constraint no instance meets: ECS's failure, no task.
kubectl apply -f - <<'YAML'
apiVersion: ecs.kubecs.io/v1alpha1
kind: Task
metadata: {name: nowhere, namespace: e2e-runtask}
spec:
  cluster: batch
  taskDefinition: job
  placementConstraints:
    - {type: memberOf, expression: "attribute:ecs.instance-type == p4d.24xlarge"}
YAML
wait_until "a MemberOf failure" 60 field_eq tasks.ecs.kubecs.io nowhere '{.status.failures[0].reason}' MemberOf $NS
jp tasks.ecs.kubecs.io nowhere '{.status.failures[0].detail}' $NS | grep -qF "encountered error \"MemberOf\" placement constraint" || fail "detail: $(jp tasks.ecs.kubecs.io nowhere '{.status.failures[0].detail}' $NS)"
expect_eq "no pod" "" "$(kubectl get pods -n $NS -l ecs.kubecs.io/task=nowhere -o name)"
kubectl get tasks.ecs.kubecs.io -n $NS
kubectl delete namespace $NS --wait=false
