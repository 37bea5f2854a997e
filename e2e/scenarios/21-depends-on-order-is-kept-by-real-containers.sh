# On a real node: a task whose app container dependsOn a migration (SUCCESS), a seed job
# (COMPLETE), a proxy (START) and a database (HEALTHY, by a CMD-SHELL health check). Each
# container logs the kernel's uptime when it starts and ends (one clock for all), and the
# order ECS promises is read from those real times. A migration that fails stops the task,
# and the app never starts.
NS=e2e-real-depends
fresh_namespace $NS
real_cluster $NS real
up="\$(sed 's/ .*//' /proc/uptime)"
kubectl apply -f - <<YAML
apiVersion: ecs.kubecs.io/v1alpha1
kind: TaskDefinition
metadata: {name: stack, namespace: $NS}
spec:
  networkMode: awsvpc
  cpu: "512"
  memory: "512"
  containerDefinitions:
    - name: migrate
      image: $BUSYBOX_IMAGE
      essential: false
      entryPoint: [sh, -c]
      command: ["echo start $up; sleep 2; echo end $up"]
    - name: seed
      image: $BUSYBOX_IMAGE
      essential: false
      entryPoint: [sh, -c]
      command: ["echo start $up; sleep 1; echo end $up"]
    - name: proxy
      image: $BUSYBOX_IMAGE
      entryPoint: [sh, -c]
      command: ["echo start $up; exec sleep 3600"]
      stopTimeout: 2
    - name: db
      image: $BUSYBOX_IMAGE
      entryPoint: [sh, -c]
      command: ["echo start $up; sleep 3; touch /tmp/healthy; echo healthy $up; exec sleep 3600"]
      stopTimeout: 2
      healthCheck: {command: [CMD-SHELL, "test -f /tmp/healthy"], interval: 5, timeout: 2, retries: 3}
    - name: app
      image: $BUSYBOX_IMAGE
      entryPoint: [sh, -c]
      command: ["echo start $up; exec sleep 3600"]
      stopTimeout: 2
      dependsOn:
        - {containerName: migrate, condition: SUCCESS}
        - {containerName: seed, condition: COMPLETE}
        - {containerName: proxy, condition: START}
        - {containerName: db, condition: HEALTHY}
YAML
wait_until "stack:1 registered" 60 field_eq taskdefinitions stack '{.status.latestRevision}' 1 $NS
kubectl apply -f - <<YAML
apiVersion: ecs.kubecs.io/v1alpha1
kind: Task
metadata: {name: ordered, namespace: $NS}
spec: {cluster: real, taskDefinition: stack}
YAML
wait_until "the task RUNNING" 90 field_eq tasks.ecs.kubecs.io ordered '{.status.lastStatus}' RUNNING $NS
pod="$(task_pod $NS ordered)"
app_logged() { [ -n "$(marks $NS "$pod" app start)" ] || { kubectl logs -n $NS "$pod" -c app; return 1; }; }
wait_until "the app logs its start" 30 app_logged
app_start="$(marks $NS "$pod" app start)"
for dep in "migrate end" "seed end" "proxy start" "db healthy"; do
  set -- $dep
  t="$(marks $NS "$pod" "$1" "$2")"
  [ -n "$t" ] || fail "$1 logged no '$2': $(kubectl logs -n $NS "$pod" -c "$1" 2>&1)"
  echo "$1 $2 at $t, app start at $app_start"
  before "$t" "$app_start" || fail "the app started at $app_start, before $1's $2 at $t"
done
expect_eq "the migration's exit code" 0 "$(jp tasks.ecs.kubecs.io ordered '{.status.tasks[0].containers[?(@.name=="migrate")].exitCode}' $NS)"
expect_eq "containers reported" "app db migrate proxy seed" "$(jp tasks.ecs.kubecs.io ordered '{.status.tasks[0].containers[*].name}' $NS | tr ' ' '\n' | sort | tr '\n' ' ' | sed 's/ $//')"

# The migration fails (exit 4): the SUCCESS condition is never met.
kubectl apply -f - <<YAML
apiVersion: ecs.kubecs.io/v1alpha1
kind: Task
metadata: {name: broken, namespace: $NS}
spec:
  cluster: real
  taskDefinition: stack
  overrides:
    containerOverrides:
      - {name: migrate, command: ["echo start $up; exit 4"]}
YAML
wait_until "the broken task STOPPED" 90 field_eq tasks.ecs.kubecs.io broken '{.status.lastStatus}' STOPPED $NS
broken="$(task_pod $NS broken)"
expect_eq "the migration's real exit code" 4 "$(container_field $NS "$broken" migrate state.terminated.exitCode)"
expect_eq "reported" 4 "$(jp tasks.ecs.kubecs.io broken '{.status.tasks[0].containers[?(@.name=="migrate")].exitCode}' $NS)"
expect_eq "the app never started" "" "$(container_field $NS "$broken" app state.running.startedAt)$(container_field $NS "$broken" app state.terminated.startedAt)"
expect_eq "and logged nothing" "" "$(kubectl logs -n $NS "$broken" -c app 2>/dev/null)"
expect_eq "stopped reason" "Essential container in task exited" "$(jp tasks.ecs.kubecs.io broken '{.status.tasks[0].stoppedReason}' $NS)"
