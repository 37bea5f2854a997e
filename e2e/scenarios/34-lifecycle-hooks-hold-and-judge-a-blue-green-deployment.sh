# A team gates its BLUE_GREEN deployments with lifecycle hooks: a PAUSE hook after green
# scales up (a person checks it, then continues, as with ContinueServiceDeployment), and a
# call hook after production traffic moves (an HTTP endpoint playing ECS's Lambda function,
# sent ECS's hook payload). A deployment waits at the pause until continued; when the call
# hook answers FAILED, the deployment fails in ECS's words and production goes back to the
# previous deployment.
NS=e2e-hooks
fresh_namespace $NS
all_nodes_cluster $NS default
app_taskdef $NS shop
wait_until "shop:1 registered" 60 field_eq taskdefinitions shop '{.status.latestRevision}' 1 $NS
# The hook endpoint: answers what $hooks/verdict says, keeps each payload it gets.
hooks="$(mktemp -d)"; echo SUCCEEDED > "$hooks/verdict"; port="$(free_port)"
python3 - "$hooks" "$port" > "$hooks/server.log" 2>&1 <<'PY' &
import http.server, json, os, sys, time
d, port = sys.argv[1], int(sys.argv[2])
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        with open(os.path.join(d, "payload-%.6f.json" % time.time()), "wb") as f:
            f.write(body)
        verdict = open(os.path.join(d, "verdict")).read().strip()
        out = json.dumps({"hookStatus": verdict, "reason": "error budget burned"} if verdict == "FAILED" else {"hookStatus": verdict}).encode()
        self.send_response(200); self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(out))); self.end_headers(); self.wfile.write(out)
http.server.HTTPServer(("127.0.0.1", port), H).serve_forever()
PY
server=$!
trap 'kill $server 2>/dev/null; rm -rf "$hooks"' EXIT
blue_green_service $NS shop 2 "bakeTimeInMinutes: 0, lifecycleHooks: [
    {targetType: PAUSE, lifecycleStages: [POST_SCALE_UP]},
    {hookTargetArn: \"http://127.0.0.1:$port/verdict\", lifecycleStages: [POST_PRODUCTION_TRAFFIC_SHIFT], hookDetails: {team: shop}}]"
wait_until "shop:1 COMPLETED" 90 rollout_is $NS shop shop:1 COMPLETED 2
primary() { jp services.ecs.kubecs.io shop '{.status.deployments[0].id}' $NS; }
production_is() { field_eq service shop-prod '{.spec.selector.ecs\.kubecs\.io/deployment}' "${1#ecs-svc/}" $NS; }
# deploy N MEMORY: a new revision shop:N; waits until it is the PRIMARY, paused after scale-up.
deploy() {
  app_taskdef $NS shop "" "$2"
  wait_until "shop:$1 is the PRIMARY" 60 field_eq services.ecs.kubecs.io shop '{.status.deployments[0].taskDefinition}' "shop:$1" $NS
  wait_until "shop:$1 paused after scale-up" 90 field_eq services.ecs.kubecs.io shop \
    '{.status.deployments[0].lifecycleStage} {.status.deployments[0].lifecycleHookDetails[0].status}' "POST_SCALE_UP AWAITING_ACTION" $NS
}
continue_hook() {
  local id; id="$(jp services.ecs.kubecs.io shop '{.status.deployments[0].lifecycleHookDetails[0].hookId}' $NS)"
  [ -n "$id" ] || fail "no hook id"
  kubectl annotate services.ecs.kubecs.io shop -n $NS "ecs.kubecs.io/continue=$id" --overwrite >/dev/null
}

first="$(primary)"
deploy 2 1024
second="$(primary)"
production_is "$first" || fail "production left blue before the pause was continued"
continue_hook
wait_until "production moves to shop:2" 60 production_is "$second"
wait_until "the call hook succeeds, shop:2 COMPLETED" 90 rollout_is $NS shop shop:2 COMPLETED 2
payload="$(cat "$(ls "$hooks"/payload-*.json | head -n 1)")"
python3 - "$payload" "$NS" <<'PY' || fail "payload: $payload"
import json, sys
p, ns = json.loads(sys.argv[1]), sys.argv[2]
assert p["lifecycleStage"] == "POST_PRODUCTION_TRAFFIC_SHIFT", p
assert p["resourceArn"].startswith(f"arn:aws:ecs:kubecs:{ns}:service-deployment/default/shop/"), p
assert p["executionDetails"]["serviceArn"] == f"arn:aws:ecs:kubecs:{ns}:service/default/shop", p
assert p["hookDetails"] == {"team": "shop"}, p
PY
expect_eq "the history shows the hooks' runs" "SUCCEEDED SUCCEEDED" \
  "$(jp servicedeployments "shop-${second#ecs-svc/}" '{.status.lifecycleHookDetails[*].status}' $NS)"

echo FAILED > "$hooks/verdict"
deploy 3 2048
third="$(primary)"
continue_hook
back_on_second() { production_is "$second"; }
wait_until "the call hook answers FAILED: production back on shop:2" 90 back_on_second
record="shop-${third#ecs-svc/}"
wait_until "the history records the rollback" 60 field_eq servicedeployments "$record" '{.status.status}' ROLLBACK_SUCCESSFUL $NS
reason="$(jp servicedeployments "$record" '{.status.statusReason}' $NS)"
case "$reason" in "ECS deployment lifecycle hook ${third#ecs-svc/}-post-production-traffic-shift-2 at POST_PRODUCTION_TRAFFIC_SHIFT failed: error budget burned") ;; *) fail "reason: $reason" ;; esac
service_events $NS shop | grep -qF "(service shop) (deployment $third) deployment failed: ECS deployment lifecycle hook" || fail "no event: $(service_events $NS shop | head -n 5)"
wait_until "shop:2 serves again, shop:3's tasks gone" 90 rollout_is $NS shop shop:2 COMPLETED 2
