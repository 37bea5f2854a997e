# A team runs two operator replicas: one holds the kubecs-operator Lease and reconciles, the
# other stands by; when the leader dies, the standby takes over and services keep being
# scheduled.
fresh_namespace e2e-ha
NS=e2e-ha
STANDBY_PID="$WORK/operator-standby.pid"
start_operator 18081 "$STANDBY_PID"
holder() { kubectl get lease kubecs-operator -n kubecs-system -o jsonpath='{.spec.holderIdentity}'; }
first="$(holder)"
[ -n "$first" ] || fail "no lease holder"
grep -q "$(cat "$WORK/operator.pid")\$" <<<"$first" || fail "the first operator should lead, the holder is $first"
# The leader dies: the standby takes the lease.
kill_operator
wait_until "the standby leads" 30 bash -c "kubectl get lease kubecs-operator -n kubecs-system -o jsonpath='{.spec.holderIdentity}' | grep -q -- '-$(cat "$STANDBY_PID")\$'"
all_nodes_cluster $NS default
bounded_service $NS web
# Back to one operator, started the usual way, for what follows.
start_operator
kill_operator "$STANDBY_PID"
wait_until "the restarted operator leads" 30 bash -c "kubectl get lease kubecs-operator -n kubecs-system -o jsonpath='{.spec.holderIdentity}' | grep -q -- '-$(cat "$WORK/operator.pid")\$'"
kubectl delete namespace $NS --wait=false
