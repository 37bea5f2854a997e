# On a real node: a nightly batch job run with RunTask, count 3. Each task's container
# computes its exit code from its own work (the number of files it wrote, as told by an
# override), and the Task status reports the real exit codes, ECS's stop reason and the real
# start and stop times; the containers' output is in kubectl logs.
NS=e2e-real-batch
fresh_namespace $NS
real_cluster $NS real
kubectl apply -f - <<YAML
apiVersion: ecs.kubecs.io/v1alpha1
kind: TaskDefinition
metadata: {name: etl, namespace: $NS}
spec:
  networkMode: awsvpc
  cpu: "128"
  memory: "64"
  containerDefinitions:
    - name: etl
      image: $BUSYBOX_IMAGE
      entryPoint: [sh, -c]
      command: ["for i in \$(seq 1 \$FILES); do echo row > /tmp/out-\$i; done; n=\$(ls /tmp | wc -l); echo wrote \$n files; exit \$n"]
      environment: [{name: FILES, value: "1"}]
YAML
wait_until "etl:1 registered" 60 field_eq taskdefinitions etl '{.status.latestRevision}' 1 $NS
kubectl apply -f - <<YAML
apiVersion: ecs.kubecs.io/v1alpha1
kind: Task
metadata: {name: nightly, namespace: $NS}
spec:
  cluster: real
  taskDefinition: etl:1
  count: 3
  startedBy: cron
  overrides:
    containerOverrides: [{name: etl, environment: [{name: FILES, value: "5"}]}]
YAML
wait_until "3 tasks STOPPED" 90 field_eq tasks.ecs.kubecs.io nightly '{.status.lastStatus}' STOPPED $NS
expect_eq "real exit codes" "5 5 5" "$(jp tasks.ecs.kubecs.io nightly '{.status.tasks[*].containers[0].exitCode}' $NS)"
expect_eq "stopped reason" "Essential container in task exited" "$(jp tasks.ecs.kubecs.io nightly '{range .status.tasks[*]}{.stoppedReason}{"\n"}{end}' $NS | sort -u)"
for i in 0 1 2; do
  expect_eq "task $i's output" "wrote 5 files" "$(kubectl logs -n $NS "$(task_pod $NS nightly $i)" -c etl)"
done
[ -n "$(jp tasks.ecs.kubecs.io nightly '{.status.tasks[0].startedAt}' $NS)" ] || fail "no startedAt"
[ -n "$(jp tasks.ecs.kubecs.io nightly '{.status.tasks[0].stoppedAt}' $NS)" ] || fail "no stoppedAt"
