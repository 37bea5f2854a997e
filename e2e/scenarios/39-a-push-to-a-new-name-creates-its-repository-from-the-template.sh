# A team lets CI create repositories by pushing, as ECR's create on push does: the registry
# runs with --create-on-push, and the namespace's CREATE_ON_PUSH repository creation template
# for `e2e-onpush` gives every repository a push creates under that prefix its settings. A
# push of `e2e-onpush/web:v1` by the namespace's CI identity creates the Repository object in
# the template's namespace (kubectl shows it) with the template's tag immutability, tags and
# lifecycle policy; the immutability holds from the first tag (pushing v1 again with another
# image is refused with ECR's message), and a name under no template's prefix is created
# with ECR's defaults in the pusher's namespace.
#
# The registry runs here as the chart's kubecs-registry ServiceAccount, on 127.0.0.1 with a
# store of its own; the cluster's registry is stopped meanwhile (two registries would both
# write the Repositories' status).
NS=e2e-create-on-push
fresh_namespace $NS
tmp="$(mktemp -d)"
registry_pid=""
"$E2E_DIR/cluster" registry-stop
trap '[ -n "$registry_pid" ] && kill "$registry_pid" 2>/dev/null; wait 2>/dev/null; release_finalizers "$NS"
  cp "$tmp/registry.log" "$WORK/registry-39.log" 2>/dev/null; rm -rf "$tmp"; "$E2E_DIR/cluster" registry-start' EXIT
kubectl apply -f - <<YAML
apiVersion: ecr.kubecs.io/v1alpha1
kind: RepositoryCreationTemplate
metadata: {name: onpush, namespace: $NS}
spec:
  prefix: e2e-onpush
  appliedFor: [CREATE_ON_PUSH]
  imageTagMutability: IMMUTABLE
  resourceTags: [{key: team, value: ci}]
  lifecyclePolicy:
    rules:
      - rulePriority: 1
        selection: {tagStatus: untagged, countType: sinceImagePushed, countUnit: days, countNumber: 7}
        action: {type: expire}
YAML
# The registry reads the templates before it serves (its /ready waits for its first lists).
sa_kubeconfig kubecs-system kubecs-registry "$tmp/registry.kubeconfig" 1h
port="$(free_port)"
registry="127.0.0.1:$port"
KUBECONFIG="$tmp/registry.kubeconfig" RUST_LOG=info,kube_client=warn,kube_runtime=warn \
  "$KUBECS_BIN" registry --kubernetes --create-on-push --listen "$registry" --public-host "$registry" \
  --storage-dir "$tmp/store" --token-key-file "$tmp/token.key" --lease-seconds 3 >>"$tmp/registry.log" 2>&1 &
registry_pid=$!
wait_until "the registry on $registry" 60 curl -sf "http://$registry/ready"

token="$("$KUBECS_BIN" registry-token --token-key-file "$tmp/token.key" --user "system:serviceaccount:$NS:ci" --group "system:serviceaccounts:$NS")"
layout="$("$E2E_DIR/images" layout)"
build_image "$tmp/layout" other "another image" >/dev/null
push() { # OCI-LAYOUT:TAG NAME:TAG
  timeout 60 skopeo copy -q --dest-tls-verify=false --dest-creds "AWS:$token" "oci:$1" "docker://$registry/$2"
}
push "$layout:busybox" e2e-onpush/web:v1
wait_until "the Repository of e2e-onpush/web" 30 repository_object $NS e2e-onpush/web
repo="$(repository_object $NS e2e-onpush/web)"
kubectl get repositories.ecr.kubecs.io -n $NS
expect_eq "the template's tag mutability" IMMUTABLE "$(jp repositories.ecr.kubecs.io "$repo" '{.spec.imageTagMutability}' $NS)"
expect_eq "the template's tags" "team=ci" "$(jp repositories.ecr.kubecs.io "$repo" '{range .spec.tags[*]}{.key}={.value}{end}' $NS)"
expect_eq "the template's lifecycle rule" "untagged sinceImagePushed 7" \
  "$(jp repositories.ecr.kubecs.io "$repo" '{.spec.lifecyclePolicy.rules[0].selection.tagStatus} {.spec.lifecyclePolicy.rules[0].selection.countType} {.spec.lifecyclePolicy.rules[0].selection.countNumber}' $NS)"
expect_eq "the template that made it" e2e-onpush "$(jp repositories.ecr.kubecs.io "$repo" '{.metadata.annotations.ecr\.kubecs\.io/repository-creation-template}' $NS)"
# Immutable from the first tag: v1 cannot move to another image.
if push "$tmp/layout:other" e2e-onpush/web:v1 2>"$tmp/err"; then
  fail "an immutable tag was overwritten"
fi
grep -qiE "cannot be overwritten because the repository is immutable|tag invalid" "$tmp/err" || fail "refused, but not as an immutable tag: $(cat "$tmp/err")"

# A name under no template's prefix: created with ECR's defaults, in the pusher's namespace.
push "$layout:busybox" e2e-plain/web:v1
wait_until "the Repository of e2e-plain/web" 30 repository_object $NS e2e-plain/web
expect_eq "ECR's default mutability" "" "$(jp repositories.ecr.kubecs.io "$(repository_object $NS e2e-plain/web)" '{.spec.imageTagMutability}' $NS | sed 's/^MUTABLE$//')"
echo "created on push: e2e-onpush/web as $repo with the template's settings; e2e-plain/web with ECR's defaults"
