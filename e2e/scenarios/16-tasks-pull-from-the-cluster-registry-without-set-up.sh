# A team pushes its image to the cluster registry and runs it as a task, with no pull secret
# of its own (the ECS execution-role experience): the operator keeps a pull Secret holding a
# registry token in the namespace and names it in the task pod; the registry accepts that
# token for pulls from the team's repository, and refuses it for a repository whose policy
# denies the namespace's tasks.
NS=e2e-pull
fresh_namespace $NS
PATH="$("$E2E_DIR/registry-clients"):$PATH"
tmp="$(mktemp -d)"
export DOCKER_CONFIG="$tmp/docker"
# The cluster's registry (e2e/cluster up runs it as the chart does). force: the namespace's
# deletion takes the images with the Repositories.
trap 'rm -rf "$tmp"' EXIT
kubectl apply -f - <<YAML
apiVersion: ecr.kubecs.io/v1alpha1
kind: Repository
metadata: {name: web, namespace: $NS}
spec: {force: true}
---
apiVersion: ecr.kubecs.io/v1alpha1
kind: Repository
metadata: {name: secret-sauce, namespace: $NS}
spec:
  force: true
  repositoryPolicy:
    Statement:
      - Effect: Deny
        Principal: {Kubernetes: {ServiceAccount: ["$NS:kubecs-task-execution"]}}
        Action: "ecr:BatchGetImage"
YAML
# CI pushes with a token for its own identity (here: an admin-signed one for a CI user).
ci_token="$(ci_registry_token $NS)"
crane auth login "$E2E_REGISTRY" -u AWS -p "$ci_token" >/dev/null
printf 'hello from the cluster registry\n' > "$tmp/hello.txt"
(cd "$tmp" && tar cf layer.tar hello.txt)
# The registry learns of new Repositories through its watch: a push may precede it.
wait_until "pushing web:1" 30 crane append --insecure -f "$tmp/layer.tar" -t "$E2E_REGISTRY/web:1"
wait_until "pushing secret-sauce:1" 30 crane append --insecure -f "$tmp/layer.tar" -t "$E2E_REGISTRY/secret-sauce:1"

all_nodes_cluster $NS default
kubectl apply -f - <<YAML
apiVersion: ecs.kubecs.io/v1alpha1
kind: TaskDefinition
metadata: {name: hello, namespace: $NS}
spec:
  containerDefinitions:
    - {name: hello, image: "$E2E_REGISTRY/web:1", memory: 128}
---
apiVersion: ecs.kubecs.io/v1alpha1
kind: TaskDefinition
metadata: {name: public, namespace: $NS}
spec:
  containerDefinitions:
    - {name: app, image: "public.ecr.aws/nginx/nginx:1.27", memory: 128}
YAML
wait_until "hello:1 registered" 60 field_eq taskdefinitions hello '{.status.latestRevision}' 1 $NS
wait_until "public:1 registered" 60 field_eq taskdefinitions public '{.status.latestRevision}' 1 $NS
kubectl apply -f - <<YAML
apiVersion: ecs.kubecs.io/v1alpha1
kind: Task
metadata: {name: hello, namespace: $NS}
spec: {taskDefinition: hello}
---
apiVersion: ecs.kubecs.io/v1alpha1
kind: Task
metadata: {name: public, namespace: $NS}
spec: {taskDefinition: public}
YAML
wait_until "the hello task runs" 60 field_eq tasks.ecs.kubecs.io hello '{.status.lastStatus}' RUNNING $NS
expect_eq "the task pod names the pull Secret" kubecs-registry-pull "$(kubectl get pod hello-0 -n $NS -o jsonpath='{.spec.imagePullSecrets[*].name}')"
wait_until "the public task runs" 60 field_eq tasks.ecs.kubecs.io public '{.status.lastStatus}' RUNNING $NS
expect_eq "an image from elsewhere gets no registry Secret" "" "$(kubectl get pod public-0 -n $NS -o jsonpath='{.spec.imagePullSecrets[*].name}')"
expect_eq "Secret type" kubernetes.io/dockerconfigjson "$(kubectl get secret kubecs-registry-pull -n $NS -o jsonpath='{.type}')"
pull_token="$(kubectl get secret kubecs-registry-pull -n $NS -o jsonpath='{.data.\.dockerconfigjson}' | base64 -d | python3 -c 'import json,sys; print(json.load(sys.stdin)["auths"][sys.argv[1]]["password"])' "$E2E_REGISTRY")"
# What the kubelet would do with it: pull the manifest and the layer.
accept='application/vnd.oci.image.manifest.v1+json,application/vnd.docker.distribution.manifest.v2+json'
code="$(curl -s -o "$tmp/manifest.json" -w '%{http_code}' -u "AWS:$pull_token" -H "Accept: $accept" "http://$E2E_REGISTRY/v2/web/manifests/1")"
expect_eq "the task token pulls the manifest" 200 "$code"
layer="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["layers"][0]["digest"])' "$tmp/manifest.json")"
expect_eq "and the layer" 200 "$(curl -s -o /dev/null -w '%{http_code}' -u "AWS:$pull_token" "http://$E2E_REGISTRY/v2/web/blobs/$layer")"
expect_eq "the policy Deny holds for tasks" 403 "$(curl -s -o /dev/null -w '%{http_code}' -u "AWS:$pull_token" -H "Accept: $accept" "http://$E2E_REGISTRY/v2/secret-sauce/manifests/1")"
