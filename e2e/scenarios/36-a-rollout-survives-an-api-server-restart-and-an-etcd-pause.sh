# The API server restarts and etcd stops answering for 5 s while a rollout is held in the
# middle (its new tasks never start): the operator's watches fail, say so in its
# log, and resume; no bound is violated, no pod is left that no service owns, and the next
# revision rolls out to the end. An operator that loses its lease meanwhile exits, as it must
# (two leaders never write at once); here a supervisor restarts it, as its pod's kubelet would.
fresh_namespace e2e-control-plane
NS=e2e-control-plane
all_nodes_cluster $NS default
bounded_service $NS web
start_watch $NS web --max-tasks 6 --min-healthy 2

SUP_STOP="$(mktemp -u)"; SUP_LOG="$(mktemp)"
(
  while [ ! -e "$SUP_STOP" ]; do
    if ! kill -0 "$(cat "$WORK/operator.pid")" 2>/dev/null; then
      echo "the operator exited; restarting it" >>"$SUP_LOG"
      start_operator >/dev/null 2>&1 || true
    fi
    sleep 0.5
  done
) &
SUP_PID=$!
trap 'touch "$SUP_STOP"; wait "$SUP_PID" 2>/dev/null || true; rm -f "$SUP_LOG"' EXIT
from=$(( $(wc -c <"$WORK/operator.log") + 1 ))

# web:2's tasks never leave PENDING: the rollout holds at the healthy floor.
app_taskdef $NS web stuck 1024
wait_until "web:2 has started tasks" 60 bash -c \
  "[ \$(kubectl get pods -n $NS -l ecs.kubecs.io/service=web,ecs.kubecs.io/revision=2 --no-headers 2>/dev/null | wc -l) -ge 2 ]"
expect_eq "web:2 is in progress" "web:2 IN_PROGRESS" "$(jp services.ecs.kubecs.io web '{.status.deployments[0].taskDefinition} {.status.deployments[0].rolloutState}' $NS)"

"$E2E_DIR/cluster" apiserver-restart
echo "the API server restarted"
"$E2E_DIR/cluster" etcd-pause 5
echo "etcd paused for 5 s"

# The watches resume: a new revision registered after the faults rolls out.
retry_until "web:3 applied" 60 app_taskdef $NS web "" 768
wait_until "web:3 COMPLETED with 4 tasks" 180 rollout_is $NS web web:3 COMPLETED 4
stop_watch
wait_until "operator ready" 60 curl -sf http://127.0.0.1:18080/ready

label="$(jp services.ecs.kubecs.io web '{.status.deployments[0].id}' $NS | sed 's|.*/||')"
# A restarted operator may place the last tasks before it sees the stopped ones leave their
# zone: AZ rebalancing then moves one (a fifth task for a moment), as ECS's does.
only_the_new_tasks() {
  [ "$(service_pods $NS web | wc -l | tr -d ' ') $(service_pods $NS web | awk -v d="$label" '$3 == d' | wc -l | tr -d ' ')" = "4 4" ]
}
wait_until "exactly 4 tasks, all of web:3's deployment" 90 only_the_new_tasks
orphans="$(kubectl get pods -n $NS -o jsonpath='{range .items[*]}{.metadata.name} {.metadata.ownerReferences[0].kind}{"\n"}{end}' | awk '$2 != "Service"')"
expect_eq "no orphan pod" "" "$orphans"
failed_watches="$(tail -c +"$from" "$WORK/operator.log" | grep -c 'watch failed; retrying' || true)"
[ "$failed_watches" -ge 1 ] || fail "the operator's log says nothing of its failed watches"
echo "the operator logged $failed_watches failed watches; $(grep -c . "$SUP_LOG" || true) restarts after a lost lease"
kubectl delete namespace $NS --wait=false
