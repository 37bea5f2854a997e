# On a real node: a task with an essential container and a non-essential helper. The helper
# exits first (code 3) and the task keeps running; when the essential container exits
# (code 7, after really sleeping 15 s) ECS stops the task with "Essential container in task
# exited", and both real exit codes are reported.
NS=e2e-real-essential
fresh_namespace $NS
real_cluster $NS real
kubectl apply -f - <<YAML
apiVersion: ecs.kubecs.io/v1alpha1
kind: TaskDefinition
metadata: {name: job, namespace: $NS}
spec:
  networkMode: awsvpc
  cpu: "256"
  memory: "256"
  containerDefinitions:
    - name: app
      image: $BUSYBOX_IMAGE
      essential: true
      entryPoint: [sh, -c]
      command: ["echo started; sleep 15; echo bye; exit 7"]
    - name: helper
      image: $BUSYBOX_IMAGE
      essential: false
      entryPoint: [sh, -c]
      command: ["echo helper done; exit 3"]
YAML
wait_until "job:1 registered" 60 field_eq taskdefinitions job '{.status.latestRevision}' 1 $NS
kubectl apply -f - <<YAML
apiVersion: ecs.kubecs.io/v1alpha1
kind: Task
metadata: {name: once, namespace: $NS}
spec: {cluster: real, taskDefinition: job}
YAML
pod="$(task_pod $NS once)"
helper_exited() { [ "$(container_field $NS "$pod" helper state.terminated.exitCode)" = 3 ] || { kubectl get pod "$pod" -n $NS -o wide; jp tasks.ecs.kubecs.io once '{.status}' $NS; return 1; }; }
wait_until "the helper exited 3" 60 helper_exited
expect_eq "the essential container still runs" yes "$([ -n "$(container_field $NS "$pod" app state.running.startedAt)" ] && echo yes)"
# What the Task reports once it has seen the helper's exit: still RUNNING.
helper_reported() {
  local v; v="$(jp tasks.ecs.kubecs.io once '{.status.tasks[0].lastStatus} {.status.tasks[0].containers[?(@.name=="helper")].exitCode}' $NS)"
  [ "$v" = "RUNNING 3" ] || { echo "task lastStatus and helper exit code: '$v'"; return 1; }
}
wait_until "a non-essential exit does not stop the task" 30 helper_reported
expect_eq "it ran on the real node" "$(echo $REAL_NODES | cut -d' ' -f1)" "$(kubectl get pod "$pod" -n $NS -o jsonpath='{.spec.nodeName}')"
wait_until "the task STOPPED" 60 field_eq tasks.ecs.kubecs.io once '{.status.lastStatus}' STOPPED $NS
expect_eq "stopped reason" "Essential container in task exited" "$(jp tasks.ecs.kubecs.io once '{.status.tasks[0].stoppedReason}' $NS)"
expect_eq "stop code" EssentialContainerExited "$(jp tasks.ecs.kubecs.io once '{.status.tasks[0].stopCode}' $NS)"
expect_eq "the essential container's exit code" 7 "$(jp tasks.ecs.kubecs.io once '{.status.tasks[0].containers[?(@.name=="app")].exitCode}' $NS)"
expect_eq "the helper's exit code" 3 "$(jp tasks.ecs.kubecs.io once '{.status.tasks[0].containers[?(@.name=="helper")].exitCode}' $NS)"
expect_eq "the container's own output" "started bye" "$(kubectl logs -n $NS "$pod" -c app | tr '\n' ' ' | sed 's/ $//')"
started="$(container_field $NS "$pod" app state.terminated.startedAt)"
finished="$(container_field $NS "$pod" app state.terminated.finishedAt)"
ran=$(( $(date -d "$finished" +%s) - $(date -d "$started" +%s) ))
echo "the essential container ran ${ran}s ($started → $finished)"
[ "$ran" -ge 14 ] || fail "it slept 15 s, yet ran ${ran}s"
