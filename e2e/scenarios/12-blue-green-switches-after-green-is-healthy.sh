# A team deploys with BLUE_GREEN behind a production and a test target group (core
# Services): green starts beside blue, the test Service selects green at once, the
# production Service moves to green only once every green task is healthy (watch-verified
# against the pods' readiness), and blue stops after the bake time.
fresh_namespace e2e-bluegreen
NS=e2e-bluegreen
all_nodes_cluster $NS default
app_taskdef $NS shop
wait_until "shop:1 registered" 60 field_eq taskdefinitions shop '{.status.latestRevision}' 1 $NS
blue_green_service $NS shop 3 'bakeTimeInMinutes: 0'
wait_until "blue COMPLETED" 90 rollout_is $NS shop shop:1 COMPLETED 3
blue="$(jp services.ecs.kubecs.io shop '{.status.deployments[0].id}' $NS | sed 's|.*/||')"
wait_until "production selects blue" 30 field_eq service shop-prod '{.spec.selector.ecs\.kubecs\.io/deployment}' "$blue" $NS
wait_until "production has 3 ready endpoints" 60 bash -c "[ \"\$(kubectl get endpointslices -n $NS -l kubernetes.io/service-name=shop-prod -o jsonpath='{.items[*].endpoints[?(@.conditions.ready==true)].addresses[0]}' | wc -w)\" -ge 3 ]"

start_watch $NS shop --production shop-prod
app_taskdef $NS shop "" 1024
wait_until "green is the PRIMARY" 60 field_eq services.ecs.kubecs.io shop '{.status.deployments[0].taskDefinition}' shop:2 $NS
green="$(jp services.ecs.kubecs.io shop '{.status.deployments[0].id}' $NS | sed 's|.*/||')"
wait_until "the test Service selects green" 30 field_eq service shop-test '{.spec.selector.ecs\.kubecs\.io/deployment}' "$green" $NS
wait_until "production moves to green" 90 field_eq service shop-prod '{.spec.selector.ecs\.kubecs\.io/deployment}' "$green" $NS
wait_until "green COMPLETED, blue gone" 90 rollout_is $NS shop shop:2 COMPLETED 3
stop_watch
expect_eq "only green tasks" "3" "$(service_pods $NS shop | awk -v d="$green" '$3 == d' | wc -l | tr -d ' ')"
expect_eq "no blue task" "0" "$(service_pods $NS shop | awk -v d="$blue" '$3 == d' | wc -l | tr -d ' ')"
service_events $NS shop | grep -qF "production traffic shifted" || fail "no traffic-shift event"
kubectl get service shop-prod -n $NS -o jsonpath='{.metadata.ownerReferences[0].kind}' | grep -qx Service || fail "the core Service is not owned by the ECS service"
kubectl delete namespace $NS --wait=false
