# A team replicates its images out of the cluster registry, as with ECR's registry
# replication: the namespace's `default` ReplicationConfiguration sends pushes to
# `e2e-replication/app` to two destinations, another kubecs registry (credentials in a
# Secret the registry may read through the chart's per-Secret Role) and distribution (any OCI
# registry, anonymous). A push arrives at both with the same digest, its referrer (an SBOM)
# with it, and the Repository's status counts the images COMPLETE per destination. With the
# kubecs destination stopped, a new push waits IN_PROGRESS and arrives once it is back.
NS=e2e-replication
fresh_namespace $NS
kubecs_dest_dir="$WORK/replica-38"
rm -rf "$kubecs_dest_dir"
mkdir -p "$kubecs_dest_dir"
bport="$(free_port)"
cport="$(free_port)"
b="127.0.0.1:$bport"
c="127.0.0.1:$cport"
cleanup() {
  [ -n "${b_pid:-}" ] && kill "$b_pid" 2>/dev/null
  [ -n "${DISTRIBUTION_PID:-}" ] && kill "$DISTRIBUTION_PID" 2>/dev/null
  force_repositories $NS
  rm -rf "$kubecs_dest_dir"
}
trap cleanup EXIT

# The destinations: a kubecs registry (its own store and token key) and distribution.
start_b() {
  "$KUBECS_BIN" registry --listen "$b" --storage-dir "$kubecs_dest_dir/b" \
    --token-key-file "$kubecs_dest_dir/b.key" --registry-id 000000000002 --create-on-push \
    --gc-interval-seconds 0 >>"$kubecs_dest_dir/b.log" 2>&1 &
  b_pid=$!
  wait_until "the kubecs destination on $b" 30 curl -s -o /dev/null "http://$b/v2/"
}
start_b
btoken="$("$KUBECS_BIN" registry-token --token-key-file "$kubecs_dest_dir/b.key" --user replicator)"
start_distribution "$kubecs_dest_dir/distribution" "$c" "$kubecs_dest_dir/distribution.log"

# The credentials, readable by the registry through the Role the chart makes for them
# (registry.replicationSecrets), and nothing else of the namespace.
kubectl -n $NS create secret generic replica-b --from-literal=username=AWS --from-literal=accessToken="$btoken" >/dev/null
helm template kubecs "$REPO_DIR/charts/kubecs" -n kubecs-system --kube-version "$(kubectl version -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["serverVersion"]["gitVersion"])')" \
  --set "registry.replicationSecrets[0].namespace=$NS" --set "registry.replicationSecrets[0].name=replica-b" \
  --show-only templates/registry.yaml | python3 -c '
import re, sys
docs = [d for d in re.split(r"^---$", sys.stdin.read(), flags=re.M)
        if re.search(r"^kind: (Role|RoleBinding)$", d, re.M) and re.search(r"^  name: \S+-registry-replica-b$", d, re.M)]
assert len(docs) == 2, docs
print("\n---".join(docs))' | kubectl apply -f - >/dev/null
expect_eq "the registry may get the Secret" yes \
  "$(kubectl auth can-i get secret/replica-b -n $NS --as system:serviceaccount:kubecs-system:kubecs-registry)"
expect_eq "and no other Secret" no \
  "$(kubectl auth can-i get secret/other -n $NS --as system:serviceaccount:kubecs-system:kubecs-registry || true)"

kubectl apply -f - <<YAML
apiVersion: ecr.kubecs.io/v1alpha1
kind: Repository
metadata: {name: app, namespace: $NS}
spec: {repositoryName: $NS/app}
---
apiVersion: ecr.kubecs.io/v1alpha1
kind: ReplicationConfiguration
metadata: {name: default, namespace: $NS}
spec:
  rules:
    - destinations: [{region: kubecs-b, registryId: "000000000002"}, {region: dist-c, registryId: "000000000003"}]
      repositoryFilters: [{filter: $NS/app, filterType: PREFIX_MATCH}]
  destinationRegistries:
    - {region: kubecs-b, registryId: "000000000002", url: "http://$b", credentialsSecret: replica-b}
    - {region: dist-c, registryId: "000000000003", url: "http://$c"}
YAML
token="$(ci_registry_token $NS)"
layout="$("$E2E_DIR/images" layout)"
push() { skopeo copy -q --dest-tls-verify=false --dest-creds "AWS:$token" --preserve-digests "oci:$layout:busybox" "docker://$REGISTRY/$NS/app:$1"; }
# The registry learns of new Repositories (and configurations) through its watch.
wait_until "pushing $NS/app:v1" 30 push v1
v1="$(skopeo inspect --tls-verify=false --creds "AWS:$token" --format '{{.Digest}}' "docker://$REGISTRY/$NS/app:v1")"
referrer="$("$E2E_DIR/push-referrer" "$REGISTRY" "$token" "$NS/app" "$v1")"

digest_on() { # REGISTRY CREDS-ARGS... : the digest of $NS/app:TAG there
  local where="$1" tag="$2"; shift 2
  timeout 20 skopeo inspect --tls-verify=false "$@" --format '{{.Digest}}' "docker://$where/$NS/app:$tag"
}
arrived() { # REGISTRY TAG DIGEST CREDS-ARGS...
  local where="$1" tag="$2" want="$3"; shift 3
  [ "$(digest_on "$where" "$tag" "$@")" = "$want" ]
}
wait_until "v1 on the kubecs destination" 60 arrived "$b" v1 "$v1" --creds "AWS:$btoken"
wait_until "v1 on distribution" 60 arrived "$c" v1 "$v1"
# The referrer went with its subject: B lists it as v1's referrer, distribution holds it.
referred_on_b() {
  curl -sf -u "AWS:$btoken" "http://$b/v2/$NS/app/referrers/$v1" | grep -qF "$referrer"
}
wait_until "the referrer on the kubecs destination" 60 referred_on_b
wait_until "the referrer on distribution" 60 curl -sf -o /dev/null \
  -H "Accept: application/vnd.oci.image.manifest.v1+json" "http://$c/v2/$NS/app/manifests/$referrer"

# The Repository's status: per destination, every image COMPLETE.
counts() { # REGION: "complete inProgress failed"
  kubectl get repositories.ecr.kubecs.io app -n $NS -o jsonpath="{range .status.replication[?(@.region==\"$1\")]}{.complete} {.inProgress} {.failed}{end}"
}
all_complete() { # REGION N
  [ "$(counts "$1")" = "$2 0 0" ] || { echo "$1: $(counts "$1") (complete inProgress failed)"; return 1; }
}
wait_until "2 images COMPLETE for kubecs-b in the status" 60 all_complete kubecs-b 2
wait_until "2 images COMPLETE for dist-c in the status" 60 all_complete dist-c 2
kubectl get repositories.ecr.kubecs.io app -n $NS -o jsonpath='{.status.replication}'; echo

# The kubecs destination down: v2 waits IN_PROGRESS (distribution has it), and arrives at B
# once B is back.
kill "$b_pid"
wait "$b_pid" 2>/dev/null || true
b_pid=""
curl -s -o /dev/null "http://$b/v2/" && fail "the kubecs destination still answers"
# A new image (built from scratch), not v1 tagged again.
build_image "$kubecs_dest_dir/layout" v2 "replicated v2" 100000 >/dev/null
skopeo copy -q --dest-tls-verify=false --dest-creds "AWS:$token" --preserve-digests "oci:$kubecs_dest_dir/layout:v2" "docker://$REGISTRY/$NS/app:v2"
v2="$(skopeo inspect --tls-verify=false --creds "AWS:$token" --format '{{.Digest}}' "docker://$REGISTRY/$NS/app:v2")"
wait_until "v2 on distribution" 60 arrived "$c" v2 "$v2"
in_progress() { [ "$(counts kubecs-b | cut -d' ' -f2)" -ge 1 ] || { echo "kubecs-b: $(counts kubecs-b)"; return 1; }; }
wait_until "v2 IN_PROGRESS for the stopped destination" 30 in_progress
start_b
wait_until "v2 on the kubecs destination once it is back" 90 arrived "$b" v2 "$v2" --creds "AWS:$btoken"
wait_until "3 images COMPLETE for kubecs-b in the status" 60 all_complete kubecs-b 3
echo "replicated: v1 $v1 and its referrer to a kubecs registry and to distribution; v2 after the kubecs destination came back"
