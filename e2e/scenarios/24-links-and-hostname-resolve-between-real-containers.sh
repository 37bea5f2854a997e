# On a real node: the seed's WordPress + MySQL task definition (bridge mode, `links`,
# secrets), with both images swapped for the busybox test image and commands that show what
# ECS promises: the wordpress container reaches "mysql" by its link name on its port, sees
# Docker's link variables, runs under its own `hostname`, and shares a task volume.
NS=e2e-real-links
fresh_namespace $NS
real_cluster $NS real
kubectl -n $NS create secret generic wordpress-db --from-literal=password=wp-secret --from-literal=root-password=root-secret
python3 - "$E2E_DIR/taskdefs/wordpress-mysql-bridge.json" "$BUSYBOX_IMAGE" "$NS" <<'PY' > "$WORK/24-taskdef.json"
import json, sys
td = json.load(open(sys.argv[1]))
wp, db = td["containerDefinitions"]
for c in (wp, db):
    c["image"] = sys.argv[2]
    c["entryPoint"] = ["sh", "-c"]
    c.pop("ulimits", None)
    c["stopTimeout"] = 2  # sh and httpd as PID 1 ignore SIGTERM: do not wait the default 30 s
wp["hostname"] = "wordpress"
wp["command"] = ["hostname; grep -w mysql /etc/hosts | head -n1; echo \"link $MYSQL_PORT_3306_TCP\"; "
                 "echo \"password $WORDPRESS_DB_PASSWORD\"; echo uploaded > /var/www/html/wp-content/hello; "
                 "until wget -qO /tmp/db http://mysql:3306/; do sleep 0.5; done; echo \"db $(cat /tmp/db)\"; exec sleep 3600"]
db["command"] = ["mkdir -p /srv && echo db-says-hello > /srv/index.html && exec httpd -f -p 3306 -h /srv"]
# Volumes that leave the host alone: a task-scoped one for each (ECS `host: {}` and a
# task-scoped Docker volume), and mysql sees wordpress' through volumesFrom.
td["volumes"] = [{"name": "wp-content", "host": {}},
                 {"name": "mysql-data", "dockerVolumeConfiguration": {"scope": "task", "driver": "local"}}]
db["volumesFrom"] = [{"sourceContainer": "wordpress", "readOnly": True}]
print(json.dumps({"apiVersion": "ecs.kubecs.io/v1alpha1", "kind": "TaskDefinition",
                  "metadata": {"name": "wordpress", "namespace": sys.argv[3]}, "spec": td}))
PY
kubectl apply -f "$WORK/24-taskdef.json"
wait_until "wordpress:1 registered" 60 field_eq taskdefinitions wordpress '{.status.latestRevision}' 1 $NS
kubectl apply -f - <<YAML
apiVersion: ecs.kubecs.io/v1alpha1
kind: Task
metadata: {name: blog, namespace: $NS}
spec: {cluster: real, taskDefinition: wordpress}
YAML
wait_until "the task RUNNING" 90 field_eq tasks.ecs.kubecs.io blog '{.status.lastStatus}' RUNNING $NS
pod="$(task_pod $NS blog)"
db_reached() { kubectl logs -n $NS "$pod" -c wordpress | grep -qx "db db-says-hello" || { kubectl logs -n $NS "$pod" -c wordpress; return 1; }; }
wait_until "wordpress reaches mysql by its link name" 60 db_reached
log="$(kubectl logs -n $NS "$pod" -c wordpress)"
echo "$log"
expect_eq "hostname" wordpress "$(sed -n 1p <<<"$log")"
grep -qE '^127\.0\.0\.1[[:space:]].*\bmysql\b' <<<"$log" || fail "mysql is not in /etc/hosts: $log"
grep -qE '^link tcp://[0-9.]+:3306$' <<<"$log" || fail "no Docker link variable MYSQL_PORT_3306_TCP: $log"
grep -qx "password wp-secret" <<<"$log" || fail "the secret did not arrive: $log"
expect_eq "mysql reads wordpress' volume (volumesFrom)" uploaded "$(kubectl exec -n $NS "$pod" -c mysql -- cat /var/www/html/wp-content/hello)"
kubectl exec -n $NS "$pod" -c mysql -- sh -c 'echo x > /var/www/html/wp-content/nope' 2>/dev/null && fail "volumesFrom readOnly: mysql could write"
true
