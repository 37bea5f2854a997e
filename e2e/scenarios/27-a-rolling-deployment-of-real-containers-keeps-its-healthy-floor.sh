# On a real node: a service of 4 real web servers whose health check (a real HTTP GET from
# inside the container) gates readiness, rolled to a new revision with
# minimumHealthyPercent 50 / maximumPercent 150. The watch checks after every pod event that
# at least 2 tasks really pass their readiness and at most 6 exist; every new task answers
# HTTP with the new revision's page.
NS=e2e-real-rolling
fresh_namespace $NS
real_cluster $NS real
revision() { # PAGE
  kubectl apply -f - <<YAML
apiVersion: ecs.kubecs.io/v1alpha1
kind: TaskDefinition
metadata: {name: web, namespace: $NS}
spec:
  networkMode: awsvpc
  cpu: "128"
  memory: "64"
  containerDefinitions:
    - name: web
      image: $BUSYBOX_IMAGE
      entryPoint: [sh, -c]
      command: ["mkdir -p /srv && echo $1 > /srv/index.html && sleep 2 && exec httpd -f -p 8080 -h /srv"]
      portMappings: [{containerPort: 8080}]
      stopTimeout: 2   # httpd as PID 1 ignores SIGTERM: do not wait the default 30 s
      healthCheck: {command: [CMD-SHELL, "wget -qO- http://127.0.0.1:8080/ | grep -q $1"], interval: 5, timeout: 2, retries: 2}
YAML
}
revision blue
real_service $NS web 4 "{minimumHealthyPercent: 50, maximumPercent: 150}"
wait_until "web:1 COMPLETED with 4 tasks" 120 rollout_is $NS web web:1 COMPLETED 4
start_watch $NS web --max-tasks 6 --min-healthy 2
revision green
wait_until "web:2 registered" 60 field_eq taskdefinitions web '{.status.latestRevision}' 2 $NS
wait_until "web:2 COMPLETED with 4 tasks" 180 rollout_is $NS web web:2 COMPLETED 4
stop_watch
for ip in $(kubectl get pods -n $NS -l ecs.kubecs.io/service=web -o jsonpath='{range .items[?(@.metadata.deletionTimestamp)]}{end}{range .items[*]}{.status.podIP}{" "}{end}'); do
  page="$(curl -s --max-time 5 "http://$ip:8080/")"
  echo "task $ip answers: $page"
  expect_eq "a web:2 task serves the new page" green "$page"
done
