# On a real node: a team deploys `app:live`, then pushes a new image under the same tag. As with
# ECS's software version consistency, the running deployment keeps the digest it resolved at
# its start: its tasks run `app:live@DIGEST`, and a scale-out starts the old image, not the
# moved tag. The next deployment resolves the tag again and runs the new digest; every task of
# one deployment runs the same one. A container with `versionConsistency: disabled` keeps the
# tag, and a tag that does not exist is reported in the service events.
NS=e2e-pinning
fresh_namespace $NS
real_cluster $NS real
kubectl apply -f - <<YAML
apiVersion: ecr.kubecs.io/v1alpha1
kind: Repository
metadata: {name: app, namespace: $NS}
spec: {repositoryName: $NS/app, force: true}
YAML
ci_token="$(ci_registry_token $NS)"
layout="$("$E2E_DIR/images" layout)"
work="$(mktemp -d)"
# Two images that differ by /version.txt, built on the e2e busybox.
for v in v1 v2; do
  skopeo copy -q "oci:$layout:busybox" "oci:$work/layout:$v"
  mkdir -p "$work/$v" && echo "$v" > "$work/$v/version.txt"
  umoci insert --image "$work/layout:$v" "$work/$v/version.txt" /version.txt >/dev/null
done
# push VERSION: puts that image under app:live; prints its digest.
push() {
  skopeo copy -q --dest-tls-verify=false --dest-creds "AWS:$ci_token" --digestfile "$work/digest-$1" \
    "oci:$work/layout:$1" "docker://$REGISTRY/$NS/app:live" >&2 && cat "$work/digest-$1"
}
# The registry learns of new Repositories through its watch: a push may precede it.
wait_until "pushing v1 as $NS/app:live" 30 push v1
d1="$(cat "$work/digest-v1")"
kubectl apply -f - <<YAML
apiVersion: ecs.kubecs.io/v1alpha1
kind: TaskDefinition
metadata: {name: app, namespace: $NS}
spec:
  networkMode: awsvpc
  cpu: "128"
  memory: "64"
  containerDefinitions:
    - {name: app, image: "$REGISTRY/$NS/app:live", entryPoint: [sh, -c], command: ["cat /version.txt; exec sleep 3600"], stopTimeout: 2}
    - {name: side, image: "$REGISTRY/$NS/app:live", versionConsistency: disabled, essential: false, entryPoint: [sh, -c], command: ["exec sleep 3600"], stopTimeout: 2}
YAML
real_service $NS app 2 '{minimumHealthyPercent: 50, maximumPercent: 200}'
wait_until "app:1 COMPLETED with 2 tasks" 120 rollout_is $NS app app:1 COMPLETED 2
expect_eq "the deployment records the digest of app:live" "app $d1" \
  "$(jp services.ecs.kubecs.io app '{.status.deployments[0].containerImages[?(@.containerName=="app")].containerName} {.status.deployments[0].containerImages[?(@.containerName=="app")].imageDigest}' $NS)"
expect_eq "a versionConsistency: disabled container records no digest" "" \
  "$(jp services.ecs.kubecs.io app '{.status.deployments[0].containerImages[?(@.containerName=="side")].imageDigest}' $NS)"

# images_of DEPLOYMENT-LABEL: "spec-image runtime-digest version" of its running app containers.
images_of() {
  local p
  for p in $(kubectl get pods -n $NS -l "ecs.kubecs.io/service=app,ecs.kubecs.io/deployment=$1" -o jsonpath='{.items[*].metadata.name}'); do
    echo "$(jp pod "$p" '{.spec.containers[?(@.name=="app")].image} {.status.containerStatuses[?(@.name=="app")].imageID}' $NS | sed 's/ .*@/ /') $(kubectl logs -n $NS "$p" -c app 2>/dev/null)"
  done | sort | uniq -c | sed 's/^ *//'
}
dep1="$(jp services.ecs.kubecs.io app '{.status.deployments[0].id}' $NS)"; dep1="${dep1#ecs-svc/}"
# runs DEPLOYMENT EXPECTED: its tasks' images are EXPECTED (logs follow the start closely).
runs() { local v; v="$(images_of "$1")"; [ "$v" = "$2" ] || { echo "deployment $1 runs '$v', not '$2'"; return 1; }; }
wait_until "both tasks run v1 pinned to its digest" 30 runs "$dep1" "2 $REGISTRY/$NS/app:live@$d1 $d1 v1"
pod="$(kubectl get pods -n $NS -l ecs.kubecs.io/service=app -o jsonpath='{.items[0].metadata.name}')"
expect_eq "the disabled container keeps the tag" "$REGISTRY/$NS/app:live" "$(jp pod "$pod" '{.spec.containers[?(@.name=="side")].image}' $NS)"

# The tag moves; the running deployment scales out on the digest it resolved.
d2="$(push v2)"
[ "$d1" != "$d2" ] || fail "the two images have one digest ($d1)"
kubectl patch services.ecs.kubecs.io app -n $NS --type merge -p '{"spec":{"desiredCount":3}}' >/dev/null
wait_until "3 tasks running" 120 rollout_is $NS app app:1 COMPLETED 3
wait_until "the scale-out runs the deployment's digest, not the moved tag" 30 runs "$dep1" "3 $REGISTRY/$NS/app:live@$d1 $d1 v1"

# A new deployment (forced, same task definition) resolves the tag again.
kubectl annotate services.ecs.kubecs.io app -n $NS ecs.kubecs.io/force-new-deployment=moved-tag --overwrite >/dev/null
new_deployment() { local d; d="$(jp services.ecs.kubecs.io app '{.status.deployments[0].id}' $NS)"; [ "${d#ecs-svc/}" != "$dep1" ] || { echo "still $d"; return 1; }; }
wait_until "a new deployment" 60 new_deployment
dep2="$(jp services.ecs.kubecs.io app '{.status.deployments[0].id}' $NS)"; dep2="${dep2#ecs-svc/}"
expect_eq "the new deployment records the moved tag's digest" "$d2" \
  "$(jp services.ecs.kubecs.io app '{.status.deployments[0].containerImages[?(@.containerName=="app")].imageDigest}' $NS)"
only_v2() { local v; v="$(images_of "$dep2")"; [ "$v" = "3 $REGISTRY/$NS/app:live@$d2 $d2 v2" ] && [ -z "$(images_of "$dep1")" ] || { echo "$dep2: $v / $dep1: $(images_of "$dep1")"; return 1; }; }
wait_until "every task runs v2 by its digest and none of the first deployment is left" 180 only_v2

# A tag that does not exist: the deployment says so, in the events, at its start.
kubectl patch taskdefinitions app -n $NS --type json -p "[{\"op\":\"replace\",\"path\":\"/spec/containerDefinitions/0/image\",\"value\":\"$REGISTRY/$NS/app:missing\"}]" >/dev/null
unresolved() { service_events $NS app | grep -F "(service app) was unable to resolve the image digest of container app ($REGISTRY/$NS/app:missing): $REGISTRY/$NS/app:missing: not found." || { service_events $NS app | head -n 3; return 1; }; }
wait_until "the unresolved tag in the service events" 60 unresolved
rm -rf "$work"
