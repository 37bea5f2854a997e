# On a real node: a task's `environment` and `secrets` (valueFrom a Kubernetes Secret, by
# the kubecs `name:key` form, a Secrets Manager ARN with its random suffix, one with a JSON
# key, and an SSM parameter path) reach the container's process exactly: `$`, `$$` and
# `$(...)` stay literal, as ECS passes them (Kubernetes would expand `$(VAR)`).
NS=e2e-real-env
fresh_namespace $NS
real_cluster $NS real
password='p@ss $word $(whoami) "q" $$'
kubectl -n $NS create secret generic db-credentials --from-literal=password="$password"
kubectl -n $NS create secret generic prod-api-key --from-literal=value='key-$(API)-1'
kubectl -n $NS create secret generic prod-db --from-literal=username=admin --from-literal=value=unused
kubectl -n $NS create secret generic app-db --from-literal=user='db$user'
sed "s|BUSYBOX_IMAGE|$BUSYBOX_IMAGE|; s|NAMESPACE|$NS|" <<'YAML' | kubectl apply -f -
apiVersion: ecs.kubecs.io/v1alpha1
kind: TaskDefinition
metadata: {name: env, namespace: NAMESPACE}
spec:
  networkMode: awsvpc
  cpu: "256"
  memory: "128"
  containerDefinitions:
    - name: app
      image: BUSYBOX_IMAGE
      entryPoint: [sh, -c]
      command: ["env"]
      environment:
        - {name: PRICE, value: "costs $5"}
        - {name: LITERAL, value: "$(HOME) and ${HOME}"}
        - {name: DOUBLE, value: "$$ twice"}
        - {name: PLAIN, value: "hello world"}
      secrets:
        - {name: PASSWORD, valueFrom: "db-credentials:password"}
        - {name: API_KEY, valueFrom: "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/api-key-AbC123"}
        - {name: DB_USERNAME, valueFrom: "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db:username::"}
        - {name: DB_USER, valueFrom: "arn:aws:ssm:us-east-1:123456789012:parameter/app/db/user"}
YAML
wait_until "env:1 registered" 60 field_eq taskdefinitions env '{.status.latestRevision}' 1 $NS
kubectl apply -f - <<YAML
apiVersion: ecs.kubecs.io/v1alpha1
kind: Task
metadata: {name: printenv, namespace: $NS}
spec: {cluster: real, taskDefinition: env}
YAML
wait_until "the task STOPPED" 90 field_eq tasks.ecs.kubecs.io printenv '{.status.lastStatus}' STOPPED $NS
kubectl get tasks.ecs.kubecs.io printenv -n $NS -o jsonpath="{.status.tasks[0]}"; echo
expect_eq "exit code" 0 "$(jp tasks.ecs.kubecs.io printenv '{.status.tasks[0].containers[0].exitCode}' $NS)"
got="$(kubectl logs -n $NS "$(task_pod $NS printenv)" -c app | grep -E '^(PASSWORD|API_KEY|DB_USERNAME|DB_USER|PRICE|LITERAL|DOUBLE|PLAIN)=' | sort)"
want="PASSWORD=$password
API_KEY=key-\$(API)-1
DB_USERNAME=admin
DB_USER=db\$user
PRICE=costs \$5
LITERAL=\$(HOME) and \${HOME}
DOUBLE=\$\$ twice
PLAIN=hello world"
want="$(sort <<<"$want")"
echo "$got"
[ "$got" = "$want" ] || fail "the process saw other values; expected:
$want"
