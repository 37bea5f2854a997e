# A team deploys with LINEAR (25% a step, a minute's bake between steps) behind a Gateway API
# HTTPRoute (productionListenerRule): the route's weights move production traffic from the
# blue Service to the green one step by step, watch-verified with the time between steps;
# at 100% the production Service selects green and the route sends it everything. A CANARY
# deployment whose alarm fires during the canary's bake is rolled back: the weights go back
# to blue.
NS=e2e-linear
[ -n "${ALERTMANAGER_URL:-}" ] || fail "no Alertmanager (e2e/run starts one and sets ALERTMANAGER_URL)"
gateway_api_crds
fresh_namespace $NS
all_nodes_cluster $NS default
app_taskdef $NS shop
wait_until "shop:1 registered" 60 field_eq taskdefinitions shop '{.status.latestRevision}' 1 $NS
kubectl apply -f - <<YAML
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: shop, namespace: $NS}
spec:
  rules:
    - matches: [{path: {type: PathPrefix, value: /}}]
      backendRefs: [{name: shop-prod, port: 80}]
YAML
alarm="ShopCanary-$RANDOM"
STRATEGY=LINEAR ROUTE=shop blue_green_service $NS shop 2 \
  "bakeTimeInMinutes: 0, linearConfiguration: {stepPercent: 25, stepBakeTimeInMinutes: 1}, alarms: {alarmNames: [\"$alarm\"], enable: true, rollback: true}"
wait_until "shop:1 COMPLETED" 90 rollout_is $NS shop shop:1 COMPLETED 2
weights() { jp httproute shop '{.spec.rules[0].backendRefs[?(@.name=="shop-prod")].weight}/{.spec.rules[0].backendRefs[?(@.name=="shop-test")].weight}' $NS; }
weights_are() { [ "$(weights)" = "$1" ] || { echo "weights $(weights)"; return 1; }; }
wait_until "the route sends blue everything" 30 weights_are 10000/0

# Watch the weights (each change) while shop:2 rolls out.
watch_file="$WORK/35-weights.log"
kubectl get httproute shop -n $NS -w -o 'jsonpath={.spec.rules[0].backendRefs[?(@.name=="shop-prod")].weight}/{.spec.rules[0].backendRefs[?(@.name=="shop-test")].weight}{"\n"}' > "$watch_file" &
watcher=$!
trap 'kill $watcher 2>/dev/null || true' EXIT
app_taskdef $NS shop "" 1024
wait_until "shop:2 is the PRIMARY" 60 field_eq services.ecs.kubecs.io shop '{.status.deployments[0].taskDefinition}' shop:2 $NS
green="$(jp services.ecs.kubecs.io shop '{.status.deployments[0].id}' $NS)"
wait_until "shop:2 COMPLETED after its steps" 300 rollout_is $NS shop shop:2 COMPLETED 2
kill $watcher 2>/dev/null || true
cat "$watch_file"
python3 - "$watch_file" <<'PY' || fail "the weights did not move as LINEAR 25%: $(cat "$watch_file")"
import sys
ws = []
for w in open(sys.argv[1]).read().split():
    if not ws or ws[-1] != w:
        ws.append(w)
steps = ["7500/2500", "5000/5000", "2500/7500", "10000/0"]
i = ws.index(steps[0])
assert ws[i:i + 4] == steps, ws
print("weights", ws)
PY
# The bake between steps: the steps' events, a minute apart or more.
python3 - "$(kubectl get services.ecs.kubecs.io shop -n $NS -o json)" "$green" <<'PY' || fail "the steps did not bake a minute each"
import datetime, json, sys
svc, green = json.loads(sys.argv[1]), sys.argv[2]
def at(text):
    e = [e for e in svc["status"]["events"] if e["message"] == f"(service shop) (deployment {green}) {text}"]
    assert len(e) == 1, (text, e)
    return datetime.datetime.fromisoformat(e[0]["createdAt"].replace("Z", "+00:00")).timestamp()
times = [at(f"{p}% of production traffic shifted to the new tasks.") for p in (25, 50, 75)]
times.append(at("production traffic shifted to the new tasks."))
gaps = [b - a for a, b in zip(times, times[1:])]
assert all(g >= 59 for g in gaps), gaps
print("gaps between steps (s):", gaps)
PY
expect_eq "production selects green at 100%" "${green#ecs-svc/}" "$(jp service shop-prod '{.spec.selector.ecs\.kubecs\.io/deployment}' $NS)"

# CANARY 10% with a minute's bake: its alarm fires during the bake; the weights go back.
kubectl patch services.ecs.kubecs.io shop -n $NS --type merge -p '{"spec":{"deploymentConfiguration":{"strategy":"CANARY","canaryConfiguration":{"canaryPercent":10,"canaryBakeTimeInMinutes":1}}}}' >/dev/null
app_taskdef $NS shop "" 2048
wait_until "shop:3 is the PRIMARY" 60 field_eq services.ecs.kubecs.io shop '{.status.deployments[0].taskDefinition}' shop:3 $NS
canary="$(jp services.ecs.kubecs.io shop '{.status.deployments[0].id}' $NS)"
wait_until "the canary gets 10%" 90 weights_are 9000/1000
fire_alert "$alarm"
all_back() { [ "$(weights)" = "10000/0" ] && field_eq service shop-prod '{.spec.selector.ecs\.kubecs\.io/deployment}' "${green#ecs-svc/}" $NS; }
wait_until "the alarm rolls the canary back: blue (shop:2) gets everything" 60 all_back
wait_until "the canary's record shows the rollback" 30 field_eq servicedeployments "shop-${canary#ecs-svc/}" '{.status.status}' ROLLBACK_SUCCESSFUL $NS
resolve_alert "$alarm"
