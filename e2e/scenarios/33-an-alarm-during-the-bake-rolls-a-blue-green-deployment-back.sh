# A team deploys with BLUE_GREEN and deployment alarms (`deploymentConfiguration.alarms`),
# watched as alerts of a real Alertmanager (the operator's --alertmanager-url). Green takes
# production traffic and bakes; an unrelated alert fires, then the service's own alarm: the
# deployment fails in ECS's words, production goes back to blue, and the deployment's
# history record shows the rollback, the alarm TRIGGERED and which alarm it was.
NS=e2e-alarms
[ -n "${ALERTMANAGER_URL:-}" ] || fail "no Alertmanager (e2e/run starts one and sets ALERTMANAGER_URL)"
fresh_namespace $NS
all_nodes_cluster $NS default
app_taskdef $NS shop
wait_until "shop:1 registered" 60 field_eq taskdefinitions shop '{.status.latestRevision}' 1 $NS
alarm="ShopErrorRate-$RANDOM"   # the Alertmanager outlives scenarios: a name of this run
blue_green_service $NS shop 2 "bakeTimeInMinutes: 10, alarms: {alarmNames: [\"$alarm\"], enable: true, rollback: true}"
wait_until "blue COMPLETED" 90 rollout_is $NS shop shop:1 COMPLETED 2
blue="$(jp services.ecs.kubecs.io shop '{.status.deployments[0].id}' $NS)"
expect_eq "blue's alarms watched to completion" "MONITORING_COMPLETE $alarm" \
  "$(jp services.ecs.kubecs.io shop '{.status.deployments[0].alarms.status} {.status.deployments[0].alarms.alarmNames[0]}' $NS)"

app_taskdef $NS shop "" 1024
wait_until "green is the PRIMARY" 60 field_eq services.ecs.kubecs.io shop '{.status.deployments[0].taskDefinition}' shop:2 $NS
green="$(jp services.ecs.kubecs.io shop '{.status.deployments[0].id}' $NS)"
wait_until "green bakes with production traffic" 90 field_eq services.ecs.kubecs.io shop '{.status.deployments[0].lifecycleStage}' BAKE_TIME $NS
wait_until "production selects green" 30 field_eq service shop-prod '{.spec.selector.ecs\.kubecs\.io/deployment}' "${green#ecs-svc/}" $NS
# Someone else's alert fires too: it is not one the service watches.
fire_alert "Other-$alarm"
holds() { firing_alerts | grep -qx "$1"; }
wait_until "Alertmanager holds the other alert" 30 holds "Other-$alarm"
fire_alert "$alarm"
back_on_blue() { field_eq service shop-prod '{.spec.selector.ecs\.kubecs\.io/deployment}' "${blue#ecs-svc/}" $NS; }
wait_until "production goes back to blue" 60 back_on_blue
# The failed deployment leaves the status once its tasks are gone: its record keeps it.
record="shop-${green#ecs-svc/}"
wait_until "the history records the rollback, the alarm TRIGGERED" 30 field_eq servicedeployments "$record" '{.status.status} {.status.alarms.status}' "ROLLBACK_SUCCESSFUL TRIGGERED" $NS
expect_eq "only the service's own alarm triggered it" "[\"$alarm\"]" \
  "$(jp servicedeployments "$record" '{.status.alarms.triggeredAlarmNames}' $NS)"
expect_eq "the reason names the alarm" "Failed due to alarm(s) in ALARM state: $alarm." \
  "$(jp servicedeployments "$record" '{.status.statusReason}' $NS)"
expect_eq "the rollback returned to blue's revision" "arn:aws:ecs:kubecs:$NS:service-revision/default/shop/${blue#ecs-svc/}" \
  "$(jp servicedeployments "$record" '{.status.rollback.serviceRevisionArn}' $NS)"
service_events $NS shop | grep -qF "(service shop) (deployment $green) deployment failed: alarm(s) $alarm in ALARM state." \
  || fail "no alarm event: $(service_events $NS shop | head -n 5)"
wait_until "blue is the PRIMARY again, green's tasks gone" 90 rollout_is $NS shop shop:1 COMPLETED 2
resolve_alert "$alarm"
resolve_alert "Other-$alarm"
