# A user applies task definitions and services that break ECS's static rules: the API server
# refuses them, in ECS's words, before anything runs.
fresh_namespace e2e-validation
containers=""
for i in $(seq 1 11); do containers+="    - {name: c$i, image: busybox, memory: 64}"$'\n'; done
expect_refused "Too many containers." <<YAML
apiVersion: ecs.kubecs.io/v1alpha1
kind: TaskDefinition
metadata: {name: eleven, namespace: e2e-validation}
spec:
  containerDefinitions:
$containers
YAML
expect_refused "Container.image should not be null or empty." <<'YAML'
apiVersion: ecs.kubecs.io/v1alpha1
kind: TaskDefinition
metadata: {name: noimage, namespace: e2e-validation}
spec:
  containerDefinitions:
    - {name: web, image: "", memory: 128}
YAML
expect_refused "Invalid setting for container 'sidecar'. At least one of 'memory' or 'memoryReservation' must be specified." <<'YAML'
apiVersion: ecs.kubecs.io/v1alpha1
kind: TaskDefinition
metadata: {name: nomemory, namespace: e2e-validation}
spec:
  containerDefinitions:
    - {name: web, image: nginx, memory: 128}
    - {name: sidecar, image: envoy}
YAML
expect_refused "Task definition doesn't have any essential container." <<'YAML'
apiVersion: ecs.kubecs.io/v1alpha1
kind: TaskDefinition
metadata: {name: noessential, namespace: e2e-validation}
spec:
  containerDefinitions:
    - {name: web, image: nginx, memory: 128, essential: false}
YAML
expect_refused 'Duplicate value' <<'YAML'
apiVersion: ecs.kubecs.io/v1alpha1
kind: TaskDefinition
metadata: {name: dupnames, namespace: e2e-validation}
spec:
  containerDefinitions:
    - {name: web, image: nginx, memory: 128}
    - {name: web, image: envoy, memory: 128}
YAML
expect_refused 'Unsupported value: "overlay"' <<'YAML'
apiVersion: ecs.kubecs.io/v1alpha1
kind: TaskDefinition
metadata: {name: badmode, namespace: e2e-validation}
spec:
  networkMode: overlay
  containerDefinitions:
    - {name: web, image: nginx, memory: 128}
YAML
strategies=""
for i in $(seq 1 6); do strategies+="    - {type: random}"$'\n'; done
expect_refused "Too many placement strategies: at most 5 are allowed." <<YAML
apiVersion: ecs.kubecs.io/v1alpha1
kind: Service
metadata: {name: six, namespace: e2e-validation}
spec:
  taskDefinition: web
  placementStrategy:
$strategies
YAML
constraints=""
for i in $(seq 1 11); do constraints+="    - {type: memberOf, expression: 'attribute:ecs.os-type == linux'}"$'\n'; done
expect_refused "Too many placement constraints: at most 10 are allowed." <<YAML
apiVersion: ecs.kubecs.io/v1alpha1
kind: Service
metadata: {name: eleven, namespace: e2e-validation}
spec:
  taskDefinition: web
  placementConstraints:
$constraints
YAML
expect_refused "Specify either Launch Type or Capacity Provider Strategy, but not both." <<'YAML'
apiVersion: ecs.kubecs.io/v1alpha1
kind: Service
metadata: {name: both, namespace: e2e-validation}
spec:
  taskDefinition: web
  launchType: EC2
  capacityProviderStrategy: [{capacityProvider: FARGATE, weight: 1}]
YAML
expect_refused "lifecycleHooks are supported with the BLUE_GREEN, LINEAR and CANARY deployment strategies." <<'YAML'
apiVersion: ecs.kubecs.io/v1alpha1
kind: Service
metadata: {name: hooked, namespace: e2e-validation}
spec:
  taskDefinition: web
  deploymentConfiguration: {lifecycleHooks: [{targetType: PAUSE, lifecycleStages: [POST_SCALE_UP]}]}
YAML
expect_refused "hookTargetArn is required for an AWS_LAMBDA lifecycle hook." <<'YAML'
apiVersion: ecs.kubecs.io/v1alpha1
kind: Service
metadata: {name: lambda, namespace: e2e-validation}
spec:
  taskDefinition: web
  deploymentConfiguration: {strategy: BLUE_GREEN, lifecycleHooks: [{lifecycleStages: [POST_SCALE_UP]}]}
YAML
expect_refused "The binpack placement strategy requires field 'cpu' or 'memory'." <<'YAML'
apiVersion: ecs.kubecs.io/v1alpha1
kind: Service
metadata: {name: binpack, namespace: e2e-validation}
spec:
  taskDefinition: web
  placementStrategy: [{type: binpack, field: attribute:ecs.availability-zone}]
YAML
expect_refused 'Unsupported value: "spreadout"' <<'YAML'
apiVersion: ecs.kubecs.io/v1alpha1
kind: Service
metadata: {name: badtype, namespace: e2e-validation}
spec:
  taskDefinition: web
  placementStrategy: [{type: spreadout}]
YAML
# A valid ECS task definition, as `aws ecs register-task-definition` takes it, is accepted.
kubectl apply -f - <<'YAML'
apiVersion: ecs.kubecs.io/v1alpha1
kind: TaskDefinition
metadata: {name: web, namespace: e2e-validation}
spec:
  family: web
  networkMode: awsvpc
  requiresCompatibilities: [FARGATE]
  cpu: "256"
  memory: "512"
  containerDefinitions:
    - name: web
      image: nginx:1.27
      essential: true
      portMappings: [{containerPort: 80, protocol: tcp}]
      healthCheck: {command: ["CMD-SHELL", "curl -f http://localhost/ || exit 1"], interval: 30, retries: 3}
YAML
# kubectl scale works through the scale subresource of a Service.
kubectl apply -f - <<'YAML'
apiVersion: ecs.kubecs.io/v1alpha1
kind: Service
metadata: {name: scalable, namespace: e2e-validation}
spec: {taskDefinition: web, desiredCount: 1, cluster: nowhere}
YAML
kubectl -n e2e-validation scale services.ecs.kubecs.io/scalable --replicas=3
expect_eq "desiredCount after kubectl scale" 3 "$(jp services.ecs.kubecs.io scalable '{.spec.desiredCount}' e2e-validation)"
kubectl delete namespace e2e-validation --wait=false
