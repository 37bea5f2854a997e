# A team moves its image workflow from ECR to the cluster registry. Its CI ServiceAccount logs
# in with `kubecs login-password` (as with `aws ecr get-login-password`) and pushes images
# built from scratch with umoci, with skopeo (OCI and Docker v2s2), crane and oras; they come back byte for
# byte. Bad credentials get 401, a repository policy Deny gets 403 in IAM's words, an
# IMMUTABLE repository refuses to move a tag and a missing repository refuses a push, both in
# ECR's words. Repository status shows the images, a lifecycle policy keeping the 3 newest
# previews and then expires the rest, the GC frees their blobs while a push completes intact,
# and deleting a repository that still holds images is held until `force`.
#
# The registry runs here as the chart's kubecs-registry ServiceAccount (its RBAC is what is
# tested), on 127.0.0.1 with a temporary store.
NS="${E2E_REGISTRY_NAMESPACE:-e2e-registry}"
RID=123456789012
fresh_namespace "$NS"
PATH="$("$E2E_DIR/registry-clients"):$PATH"
tmp="$(mktemp -d)"
export REGISTRY_AUTH_FILE="$tmp/auth.json" DOCKER_CONFIG="$tmp/docker"
PORT="$(free_port)"
REG="127.0.0.1:$PORT"
registry_pid=""
stop_registry() { [ -n "$registry_pid" ] && kill "$registry_pid" 2>/dev/null && wait "$registry_pid" 2>/dev/null; registry_pid=""; }
# This scenario's registry is the only one while it runs (both would write Repository status).
"$E2E_DIR/cluster" registry-stop
trap 'stop_registry; release_finalizers "$NS"; cp "$tmp/registry.log" "$WORK/15-registry.log" 2>/dev/null; rm -rf "$tmp"; "$E2E_DIR/cluster" registry-start' EXIT

sa_kubeconfig kubecs-system kubecs-registry "$tmp/registry.kubeconfig" 1h
start_registry() { # LIFECYCLE_INTERVAL
  KUBECONFIG="$tmp/registry.kubeconfig" RUST_LOG=info,kube_client=warn,kube_runtime=warn "$KUBECS_BIN" registry --kubernetes \
    --listen "$REG" --public-host "$REG" --storage-dir "$tmp/store" --token-key-file "$tmp/token.key" \
    --registry-id "$RID" --gc-interval-seconds 2 --gc-grace-seconds 3 --lease-seconds 4 \
    --lifecycle-interval-seconds "$1" >>"$tmp/registry.log" 2>&1 &
  registry_pid=$!
  wait_until "registry up" 60 curl -sf "http://$REG/ready" || { tail -20 "$tmp/registry.log"; fail "registry did not start"; }
}

kubectl -n "$NS" create serviceaccount ci
kubectl -n "$NS" create serviceaccount intruder
kubectl apply -f - <<YAML
apiVersion: ecr.kubecs.io/v1alpha1
kind: Repository
metadata: {name: app, namespace: $NS}
spec:
  repositoryPolicy:
    Version: "2012-10-17"
    Statement:
      - Sid: NoIntruders
        Effect: Deny
        Principal: {Kubernetes: {ServiceAccount: ["$NS:intruder"]}}
        Action: ["ecr:*"]
---
apiVersion: ecr.kubecs.io/v1alpha1
kind: Repository
metadata: {name: pinned, namespace: $NS}
spec: {imageTagMutability: IMMUTABLE}
---
apiVersion: ecr.kubecs.io/v1alpha1
kind: Repository
metadata: {name: trim, namespace: $NS}
spec: {}
YAML
start_registry 3600

# --- credentials ------------------------------------------------------------------------------
sa_kubeconfig "$NS" ci "$tmp/ci.kubeconfig"
TOKEN="$(KUBECONFIG="$tmp/ci.kubeconfig" "$KUBECS_BIN" login-password --registry "$REG")"
case "$TOKEN" in kubecs1.*) ;; *) fail "login-password printed '$TOKEN'" ;; esac
skopeo login --tls-verify=false -u AWS -p "$TOKEN" "$REG"
# An admin kubeconfig with client certificates has no bearer token: a clear refusal.
if out="$("$KUBECS_BIN" login-password --registry "$REG" 2>&1)"; then fail "login-password with client certs: $out"; fi
grep -qF "kubectl create token" <<<"$out" || fail "login-password error: $out"
status() { curl -s -o "$tmp/body" -w '%{http_code}' "$@"; }
expect_eq "no token" 401 "$(status "http://$REG/v2/")"
expect_eq "forged token" 401 "$(status -u "AWS:kubecs1.eyJ1IjoiYWRtaW4ifQ.AAAA" "http://$REG/v2/")"
expired="$(python3 - "$tmp/token.key" "$NS" <<'PY'
import base64, hashlib, hmac, json, sys, time
key = open(sys.argv[1], "rb").read()
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
now = int(time.time())
signed = "kubecs1." + b64(json.dumps({"u": "system:serviceaccount:" + sys.argv[2] + ":ci", "g": [], "iat": now - 13 * 3600, "exp": now - 3600}).encode())
print(signed + "." + b64(hmac.new(key, signed.encode(), hashlib.sha256).digest()))
PY
)"
expect_eq "expired (correctly signed) token" 401 "$(status -u "AWS:$expired" "http://$REG/v2/")"
expect_eq "login-password token" 200 "$(status -u "AWS:$TOKEN" "http://$REG/v2/")"
expect_eq "a ServiceAccount token directly (TokenReview)" 200 "$(status -u "AWS:$(kubectl -n "$NS" create token ci)" "http://$REG/v2/")"
expect_eq "a registry token cannot mint another" 401 "$(status -X POST -H "Authorization: Bearer $TOKEN" "http://$REG/kubecs/v1/token")"

# --- skopeo: OCI and v2s2, byte for byte ------------------------------------------------------
build_image "$tmp/layout" v1 "hello from kubecs" 200000
skopeo copy --dest-tls-verify=false --preserve-digests "oci:$tmp/layout:v1" "docker://$REG/app:oci"
skopeo copy --dest-tls-verify=false --format v2s2 "oci:$tmp/layout:v1" "docker://$REG/app:v2s2"
for t in oci v2s2; do
  skopeo copy --src-tls-verify=false "docker://$REG/app:$t" "dir:$tmp/back-$t"
  layer="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["layers"][0]["digest"].split(":")[1])' "$tmp/back-$t/manifest.json")"
  cmp "$tmp/back-$t/$layer" "$tmp/layout/blobs/sha256/$layer" || fail "layer of app:$t differs"
done
oci_manifest="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["manifests"][0]["digest"].split(":")[1])' "$tmp/layout/index.json")"
cmp "$tmp/back-oci/manifest.json" "$tmp/layout/blobs/sha256/$oci_manifest" || fail "OCI manifest differs"
grep -q 'application/vnd.docker.distribution.manifest.v2+json' "$tmp/back-v2s2/manifest.json" || fail "v2s2 manifest expected"
echo "skopeo: OCI and v2s2 pushed and pulled back identical"

# --- crane and oras ---------------------------------------------------------------------------
crane auth login "$REG" -u AWS -p "$TOKEN"
head -c 300000 /dev/urandom > "$tmp/crane.bin"; tar -C "$tmp" -czf "$tmp/crane-layer.tgz" crane.bin
crane append --insecure -f "$tmp/crane-layer.tgz" -t "$REG/app:crane"
crane export --insecure "$REG/app:crane" - | tar -xO crane.bin > "$tmp/crane.back"
cmp "$tmp/crane.bin" "$tmp/crane.back" || fail "crane round trip differs"
echo "an oras artifact $RANDOM" > "$tmp/notes.txt"
(cd "$tmp" && oras push --plain-http -u AWS -p "$TOKEN" "$REG/app:oras" notes.txt:text/plain)
mkdir -p "$tmp/oras-out"; (cd "$tmp/oras-out" && oras pull --plain-http -u AWS -p "$TOKEN" "$REG/app:oras")
cmp "$tmp/notes.txt" "$tmp/oras-out/notes.txt" || fail "oras round trip differs"
echo "crane and oras pushed and pulled back identical"

# --- ECR refusals ------------------------------------------------------------------------------
sa_kubeconfig "$NS" intruder "$tmp/intruder.kubeconfig"
ITOKEN="$(KUBECONFIG="$tmp/intruder.kubeconfig" "$KUBECS_BIN" login-password --registry "$REG")"
expect_eq "Deny for intruder" 403 "$(status -u "AWS:$ITOKEN" "http://$REG/v2/app/manifests/oci")"
grep -qF "User: system:serviceaccount:$NS:intruder is not authorized to perform: ecr:BatchGetImage on resource: arn:aws:ecr:kubecs:$NS:repository/app with an explicit deny in a resource-based policy" "$tmp/body" || fail "403 body: $(cat "$tmp/body")"
if skopeo copy --dest-tls-verify=false --dest-creds "AWS:$ITOKEN" "oci:$tmp/layout:v1" "docker://$REG/app:mine" 2>"$tmp/err"; then fail "intruder pushed"; fi
grep -qE "403|denied" "$tmp/err" || fail "skopeo error: $(cat "$tmp/err")"

build_image "$tmp/layout" v2 "another image"
skopeo copy --dest-tls-verify=false --preserve-digests "oci:$tmp/layout:v1" "docker://$REG/pinned:release"
skopeo copy --dest-tls-verify=false --preserve-digests "oci:$tmp/layout:v2" "docker://$REG/pinned:other"
skopeo copy --dest-tls-verify=false --preserve-digests "oci:$tmp/layout:v1" "docker://$REG/pinned:release"  # same digest: allowed
if skopeo copy --dest-tls-verify=false --preserve-digests "oci:$tmp/layout:v2" "docker://$REG/pinned:release" 2>"$tmp/err"; then fail "an IMMUTABLE tag moved"; fi
v2_manifest="$(curl -s -u "AWS:$TOKEN" -H 'Accept: application/vnd.oci.image.manifest.v1+json' "http://$REG/v2/pinned/manifests/other")"
expect_eq "moving an immutable tag" 400 "$(status -X PUT -u "AWS:$TOKEN" -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' --data-binary "$v2_manifest" "http://$REG/v2/pinned/manifests/release")"
grep -qF '"code":"TAG_INVALID"' "$tmp/body" || fail "body: $(cat "$tmp/body")"
grep -qF "The image tag 'release' already exists in the 'pinned' repository and cannot be overwritten because the repository is immutable." "$tmp/body" || fail "body: $(cat "$tmp/body")"

expect_eq "push to a missing repository" 404 "$(status -X POST -u "AWS:$TOKEN" "http://$REG/v2/missing/blobs/uploads/")"
grep -qF "The repository with name 'missing' does not exist in the registry with id '$RID'" "$tmp/body" || fail "body: $(cat "$tmp/body")"
grep -qF NAME_UNKNOWN "$tmp/body" || fail "body: $(cat "$tmp/body")"
if skopeo copy --dest-tls-verify=false "oci:$tmp/layout:v1" "docker://$REG/missing:v1" 2>"$tmp/err"; then fail "pushed to a missing repository"; fi

# --- status -------------------------------------------------------------------------------------
wait_until "app status counts 4 images" 30 field_eq repository app '{.status.imageCount}' 4 "$NS"
expect_eq "repositoryUri" "$REG/app" "$(jp repository app '{.status.repositoryUri}' "$NS")"
expect_eq "repositoryArn" "arn:aws:ecr:kubecs:$NS:repository/app" "$(jp repository app '{.status.repositoryArn}' "$NS")"
expect_eq "registryId" "$RID" "$(jp repository app '{.status.registryId}' "$NS")"
size="$(jp repository app '{.status.sizeInBytes}' "$NS")"; [ "$size" -gt 500000 ] || fail "sizeInBytes $size"
[ -n "$(jp repository app '{.status.lastPushedAt}' "$NS")" ] || fail "no lastPushedAt"
kubectl get repository -n "$NS" -o jsonpath='{.items[0].metadata.finalizers}' | grep -q ecr.kubecs.io/images || fail "no finalizer"
echo "status: app holds 4 images, $size bytes"
expect_eq "app Ready" True "$(jp repository app '{.status.conditions[?(@.type=="Ready")].status}' "$NS")"
# Repository names are global: a second object claiming 'app' has no effect and says so.
kubectl apply -f - <<YAML
apiVersion: ecr.kubecs.io/v1alpha1
kind: Repository
metadata: {name: app-again, namespace: $NS}
spec: {repositoryName: app, imageTagMutability: IMMUTABLE}
YAML
wait_until "the duplicate is Degraded" 30 field_eq repository app-again '{.status.conditions[?(@.type=="Degraded")].reason}' DuplicateRepositoryName "$NS"
skopeo copy --dest-tls-verify=false --format v2s2 "oci:$tmp/layout:v2" "docker://$REG/app:v2s2"  # still MUTABLE
kubectl -n "$NS" delete repository app-again --wait=true --timeout=30s

# --- lifecycle: keep the 3 newest; GC frees the rest while a push completes ----------------------
for i in 1 2 3 4 5; do
  build_image "$tmp/layout" "t$i" "trim image $i" 50000
  skopeo copy --dest-tls-verify=false --preserve-digests "oci:$tmp/layout:t$i" "docker://$REG/trim:t$i"
  sleep 1.1  # distinct push times (seconds)
done
layer_of() { python3 -c 'import json,sys
idx = json.load(open(sys.argv[1] + "/index.json"))
m = [m for m in idx["manifests"] if m["annotations"]["org.opencontainers.image.ref.name"] == sys.argv[2]][0]
man = json.load(open(sys.argv[1] + "/blobs/sha256/" + m["digest"].split(":")[1]))
print(man["layers"][0]["digest"])' "$tmp/layout" "$1"; }
expired_layers="$(layer_of t1) $(layer_of t2)"
kubectl -n "$NS" patch repository trim --type merge -p '{"spec":{"lifecyclePolicy":{"rules":[{"rulePriority":1,"description":"keep the 3 newest","selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":3},"action":{"type":"expire"}}]}}}'
wait_until "the preview lists t1 and t2" 30 bash -c "[ \"\$(kubectl get repository trim -n $NS -o jsonpath='{.status.lifecyclePolicyPreview[*].imageTags[0]}')\" = 't1 t2' ]"
expect_eq "nothing expired before the policy runs" 5 "$(jp repository trim '{.status.imageCount}' "$NS")"
# The lifecycle runs at start and every interval: restart with a short one.
stop_registry
start_registry 2
build_image "$tmp/layout" big "pushed during GC" 8000000
skopeo copy --dest-tls-verify=false --preserve-digests "oci:$tmp/layout:big" "docker://$REG/trim:t6" &
push_pid=$!
wait_until "t1 and t2 expired" 30 bash -c "! curl -sf -o /dev/null -u 'AWS:$TOKEN' http://$REG/v2/trim/manifests/t1 && ! curl -sf -o /dev/null -u 'AWS:$TOKEN' http://$REG/v2/trim/manifests/t2"
wait "$push_pid" || fail "the push during GC failed"
for l in $expired_layers; do
  f="$tmp/store/blobs/sha256/${l:7:2}/${l#sha256:}"
  wait_until "GC frees $l" 30 test ! -e "$f"
done
skopeo copy --src-tls-verify=false "docker://$REG/trim:t6" "dir:$tmp/back-big"
big_layer="$(layer_of big)"
cmp "$tmp/back-big/${big_layer#sha256:}" "$tmp/layout/blobs/sha256/${big_layer#sha256:}" || fail "the image pushed during GC is damaged"
grep -q "expired image" "$tmp/registry.log" || fail "no expiration log line"
kubectl get events -n "$NS" --field-selector reason=ImageExpired -o name | grep -q . || fail "no ImageExpired event"
echo "lifecycle: t1 and t2 expired, their layers freed; t6 pushed during GC is intact"

# --- fsck: the store after all that is sound; a blob changed on disk is found --------------------
stop_registry
out="$("$KUBECS_BIN" registry fsck --storage-dir "$tmp/store")" || fail "fsck of the store: $out"
grep -E ' [1-9][0-9]* manifests, [1-9][0-9]* tags: clean$' <<<"$out" >/dev/null || fail "fsck: $out"
echo "fsck: $out"
f="$tmp/store/blobs/sha256/${big_layer:7:2}/${big_layer#sha256:}"
cp "$f" "$tmp/big.orig" && printf 'x' >> "$f"
if out="$("$KUBECS_BIN" registry fsck --storage-dir "$tmp/store")"; then fail "fsck missed a changed blob: $out"; fi
grep -F "corrupt blob blobs/sha256/${big_layer:7:2}/${big_layer#sha256:}" <<<"$out" >/dev/null || fail "fsck: $out"
cp "$tmp/big.orig" "$f"
start_registry 2

# --- deletion needs force -----------------------------------------------------------------------
kubectl -n "$NS" delete repository app --wait=false
wait_until "deletion held" 30 field_eq repository app '{.status.conditions[?(@.type=="Ready")].reason}' RepositoryNotEmptyException "$NS"
expect_eq "ECR's message" "The repository with name 'app' in registry with id '$RID' cannot be deleted because it still contains images" \
  "$(jp repository app '{.status.conditions[?(@.type=="Ready")].message}' "$NS")"
sleep 2
kubectl -n "$NS" get repository app >/dev/null || fail "a non-empty repository went away without force"
kubectl -n "$NS" patch repository app --type merge -p '{"spec":{"force":true}}'
wait_until "app deleted with force" 30 bash -c "! kubectl -n $NS get repository app"
wait_until "its images are gone" 10 bash -c "[ \"\$(curl -s -o /dev/null -w '%{http_code}' -u 'AWS:$TOKEN' http://$REG/v2/app/manifests/oci)\" = 404 ]"

kubectl -n "$NS" patch repository pinned --type merge -p '{"spec":{"force":true}}'
kubectl -n "$NS" patch repository trim --type merge -p '{"spec":{"force":true}}'
kubectl -n "$NS" delete repository --all --wait=true --timeout=30s
stop_registry
kubectl delete namespace "$NS" --wait=false
