# On a real node: a team keeps its base images in the cluster registry's pull through cache
# instead of pulling from the internet at deploy time. The upstream is distribution (built
# from its Go module) on 127.0.0.1, holding busybox pushed by skopeo. With a
# PullThroughCacheRule `e2e-hub` -> upstream, a task of `$REGISTRY/e2e-hub/library/busybox:v1`
# runs on the real node: the registry fetched each blob from the upstream once, and the cache
# made a Repository in the rule's namespace (kubectl shows it) with the settings of the
# PULL_THROUGH_CACHE repository creation template for its prefix. The pull is recorded: the
# Repository's lastPulledAt and the image's lastRecordedPullTime. Then the upstream is
# stopped, the node forgets the image, and a second task pulls it again from the cache alone.
NS=e2e-real-cache
fresh_namespace $NS
real_cluster $NS real
dport="$(free_port)"
upstream="127.0.0.1:$dport"
dist_log="$WORK/upstream-37.log"
cleanup() {
  [ -n "${DISTRIBUTION_PID:-}" ] && kill "$DISTRIBUTION_PID" 2>/dev/null
  force_repositories $NS
  rm -rf "$WORK/upstream-37" "$WORK/upstream-37.yml"
}
trap cleanup EXIT
start_distribution "$WORK/upstream-37" "$upstream" "$dist_log"
# busybox with a layer of its own (so its config and that layer are new to the cluster's
# registry, whose store already holds busybox's layers from e2e/cluster up).
image="$WORK/upstream-37/image"
cp -r "$("$E2E_DIR/images" layout)" "$image"
head -c 200000 /dev/urandom > "$WORK/upstream-37/random.bin"
umoci insert --rootless --image "$image:busybox" "$WORK/upstream-37/random.bin" /random.bin
skopeo copy -q --dest-tls-verify=false --preserve-digests "oci:$image:busybox" "docker://$upstream/library/busybox:v1"
rm -rf "$image"
mapfile -t blobs < <(skopeo inspect --tls-verify=false --raw "docker://$upstream/library/busybox:v1" | python3 -c '
import json, sys
m = json.load(sys.stdin)
for d in [m["config"]] + m["layers"]:
    print(d["digest"])')
[ ${#blobs[@]} -ge 3 ] || fail "the upstream image lacks its layers: ${blobs[*]}"
# The config and the last layer are this run's own.
own=("${blobs[0]}" "${blobs[-1]}")

kubectl apply -f - <<YAML
apiVersion: ecr.kubecs.io/v1alpha1
kind: RepositoryCreationTemplate
metadata: {name: hub, namespace: $NS}
spec:
  prefix: e2e-hub
  appliedFor: [PULL_THROUGH_CACHE]
  imageTagMutability: IMMUTABLE
  resourceTags: [{key: team, value: platform}]
  lifecyclePolicy:
    rules:
      - rulePriority: 1
        description: base images no task pulled for 30 days
        selection: {tagStatus: any, countType: sinceImagePulled, countUnit: days, countNumber: 30}
        action: {type: expire}
---
apiVersion: ecr.kubecs.io/v1alpha1
kind: PullThroughCacheRule
metadata: {name: hub, namespace: $NS}
spec: {ecrRepositoryPrefix: e2e-hub, upstreamRegistryUrl: "http://$upstream"}
---
apiVersion: ecs.kubecs.io/v1alpha1
kind: TaskDefinition
metadata: {name: cached, namespace: $NS}
spec:
  networkMode: awsvpc
  cpu: "128"
  memory: "64"
  containerDefinitions:
    - {name: app, image: "$REGISTRY/e2e-hub/library/busybox:v1", entryPoint: [sh, -c], command: ["echo pulled through the cache"]}
YAML
wait_until "cached:1 registered" 60 field_eq taskdefinitions cached '{.status.latestRevision}' 1 $NS
run_task() { # NAME
  kubectl apply -f - <<YAML
apiVersion: ecs.kubecs.io/v1alpha1
kind: Task
metadata: {name: $1, namespace: $NS}
spec: {cluster: real, taskDefinition: "cached:1"}
YAML
  wait_until "task $1 STOPPED" 120 field_eq tasks.ecs.kubecs.io "$1" '{.status.lastStatus}' STOPPED $NS
  expect_eq "task $1's exit code" 0 "$(jp tasks.ecs.kubecs.io "$1" '{.status.tasks[0].containers[0].exitCode}' $NS)"
  expect_eq "task $1's output" "pulled through the cache" "$(kubectl logs -n $NS "$(task_pod $NS "$1")" -c app)"
  # Reason Pulled with "Successfully pulled": the kubelet pulled it (not "already present").
  kubectl get events -n $NS --field-selector "involvedObject.name=$(task_pod $NS "$1"),reason=Pulled" -o jsonpath='{.items[*].message}' \
    | grep -F "$REGISTRY/e2e-hub/library/busybox" | grep -qF "Successfully pulled" \
    || fail "no kubelet pull of the cached image for task $1: $(kubectl get events -n $NS --field-selector "involvedObject.name=$(task_pod $NS "$1")")"
}

# 1. The first task: a cold pull through the cache.
run_task first
# Each blob is fetched once at most (busybox's may be in the store already), this run's own
# exactly once.
fetched=()
for b in "${blobs[@]}"; do
  n="$(grep -c "\"GET /v2/library/busybox/blobs/$b " "$dist_log" || true)"
  [ "$n" -le 1 ] || fail "blob $b was fetched $n times from the upstream"
  fetched+=("$n")
done
for b in "${own[@]}"; do
  expect_eq "fetches of blob $b (new to the registry) from the upstream" 1 "$(grep -c "\"GET /v2/library/busybox/blobs/$b " "$dist_log" || true)"
done
wait_until "the cache's Repository in $NS" 30 repository_object $NS e2e-hub/library/busybox
repo="$(repository_object $NS e2e-hub/library/busybox)"
kubectl get repositories.ecr.kubecs.io -n $NS -o wide
expect_eq "the rule that made it" e2e-hub "$(jp repositories.ecr.kubecs.io "$repo" '{.metadata.annotations.ecr\.kubecs\.io/pull-through-cache-prefix}' $NS)"
expect_eq "the template's tag mutability" IMMUTABLE "$(jp repositories.ecr.kubecs.io "$repo" '{.spec.imageTagMutability}' $NS)"
expect_eq "the template's tags" "team=platform" "$(jp repositories.ecr.kubecs.io "$repo" '{range .spec.tags[*]}{.key}={.value}{end}' $NS)"
expect_eq "the template's lifecycle rule" "sinceImagePulled 30" \
  "$(jp repositories.ecr.kubecs.io "$repo" '{.spec.lifecyclePolicy.rules[0].selection.countType} {.spec.lifecyclePolicy.rules[0].selection.countNumber}' $NS)"
expect_eq "the template that made it" e2e-hub "$(jp repositories.ecr.kubecs.io "$repo" '{.metadata.annotations.ecr\.kubecs\.io/repository-creation-template}' $NS)"

# 2. The pull is recorded (in batches): the Repository's status and the image's
# lastRecordedPullTime (what describe-images shows).
wait_until "the Repository's lastPulledAt" 90 bash -c "[ -n \"\$(kubectl get repositories.ecr.kubecs.io $repo -n $NS -o jsonpath='{.status.lastPulledAt}')\" ]"
token="$(ci_registry_token $NS)"
pulled_at="$(curl -sf -u "AWS:$token" "http://$REGISTRY/v2/e2e-hub/library/busybox/_kubecs/images" | python3 -c '
import json, sys
print(" ".join(i.get("lastRecordedPullTime", "-") for i in json.load(sys.stdin)["images"] if "v1" in i.get("tags", [])))')"
case "$pulled_at" in 20*T*) ;; *) fail "lastRecordedPullTime of e2e-hub/library/busybox:v1: '$pulled_at'" ;; esac

# 3. The upstream stopped, the node's copy forgotten: the second task's pull is served by the
# cache alone.
kill "$DISTRIBUTION_PID"
wait "$DISTRIBUTION_PID" 2>/dev/null || true
DISTRIBUTION_PID=""
curl -sf -o /dev/null "http://$upstream/v2/" && fail "distribution still answers"
"$E2E_DIR/node" forget-image 1 e2e-hub/library/busybox
run_task second
echo "pulled through the cache: ${#blobs[@]} blobs, fetched from the upstream ${fetched[*]} time(s); recorded pull $pulled_at; served again with the upstream stopped"
