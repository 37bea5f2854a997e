# On a real node: a team pushes its image into the cluster registry and runs a service of it
# with no pull secret of its own. The kubelet pulls it with the operator's injected pull
# Secret (the pod names it; the kubelet reports the pull). A repository whose policy denies
# the namespace's tasks refuses the pull with 403, and the service's events say so in ECS's
# CannotPullContainerError wording.
NS=e2e-real-pull
fresh_namespace $NS
real_cluster $NS real
kubectl apply -f - <<YAML
apiVersion: ecr.kubecs.io/v1alpha1
kind: Repository
metadata: {name: shop, namespace: $NS}
spec: {repositoryName: $NS/shop, force: true}
---
apiVersion: ecr.kubecs.io/v1alpha1
kind: Repository
metadata: {name: vault, namespace: $NS}
spec:
  repositoryName: $NS/vault
  force: true
  repositoryPolicy:
    Statement:
      - Effect: Deny
        Principal: {Kubernetes: {ServiceAccount: ["$NS:kubecs-task-execution"]}}
        Action: ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]
YAML
ci_token="$(ci_registry_token $NS)"
layout="$("$E2E_DIR/images" layout)"
push() { skopeo copy -q --dest-tls-verify=false --dest-creds "AWS:$ci_token" "oci:$layout:busybox" "docker://$REGISTRY/$1"; }
# The registry learns of new Repositories through its watch: a push may precede it.
wait_until "pushing $NS/shop:1" 30 push "$NS/shop:1"
wait_until "pushing $NS/vault:1" 30 push "$NS/vault:1"
service() { # NAME IMAGE
  kubectl apply -f - <<YAML
apiVersion: ecs.kubecs.io/v1alpha1
kind: TaskDefinition
metadata: {name: $1, namespace: $NS}
spec:
  networkMode: awsvpc
  cpu: "256"
  memory: "128"
  containerDefinitions:
    - {name: app, image: "$2", entryPoint: [sh, -c], command: ["echo pulled and running; exec sleep 3600"], stopTimeout: 2}
YAML
  wait_until "$1:1 registered" 60 field_eq taskdefinitions "$1" '{.status.latestRevision}' 1 $NS
  kubectl apply -f - <<YAML
apiVersion: ecs.kubecs.io/v1alpha1
kind: Service
metadata: {name: $1, namespace: $NS}
spec: {cluster: real, taskDefinition: $1, desiredCount: 1}
YAML
}
service shop "$REGISTRY/$NS/shop:1"
wait_until "shop:1 COMPLETED" 90 rollout_is $NS shop shop:1 COMPLETED 1
pod="$(kubectl get pods -n $NS -l ecs.kubecs.io/service=shop -o jsonpath='{.items[0].metadata.name}')"
expect_eq "the task pod names the pull Secret" kubecs-registry-pull "$(kubectl get pod "$pod" -n $NS -o jsonpath='{.spec.imagePullSecrets[*].name}')"
expect_eq "the container runs the pushed image" "pulled and running" "$(kubectl logs -n $NS "$pod" -c app)"
kubectl get events -n $NS --field-selector "involvedObject.name=$pod,reason=Pulled" -o jsonpath='{.items[*].message}' | grep -qF "$REGISTRY/$NS/shop:1" \
  || fail "no kubelet Pulled event for the image: $(kubectl get events -n $NS --field-selector involvedObject.name=$pod)"

service vault "$REGISTRY/$NS/vault:1"
pull_refused() {
  service_events $NS vault | grep -E '\(service vault\) \(task [^)]+\) failed to start: CannotPullContainerError: .*403' \
    || { service_events $NS vault; return 1; }
}
wait_until "ECS's CannotPullContainerError in the service events" 120 pull_refused
service_events $NS vault | head -n 5
stopped="$(jp services.ecs.kubecs.io vault '{.status.stoppedTasks[0].stopCode} {.status.stoppedTasks[0].stoppedReason}' $NS)"
case "$stopped" in "TaskFailedToStart CannotPullContainerError: "*) ;; *) fail "stopped task: $stopped" ;; esac
