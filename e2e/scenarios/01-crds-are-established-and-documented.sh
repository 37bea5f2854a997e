# A user installs the CRDs and reads their documentation with kubectl explain.
for crd in ecsclusters.ecs.kubecs.io taskdefinitions.ecs.kubecs.io services.ecs.kubecs.io servicedeployments.ecs.kubecs.io \
           tasks.ecs.kubecs.io repositories.ecr.kubecs.io capacityproviders.ecs.kubecs.io; do
  expect_eq "$crd Established" True "$(kubectl get crd "$crd" -o 'jsonpath={.status.conditions[?(@.type=="Established")].status}')"
done
# The API server publishes a new CRD's OpenAPI a moment after it is Established.
explains() { local out; out="$(kubectl explain "$@" 2>/dev/null)"; grep -qF -- "$EXPECT" <<<"$out"; }
EXPECT="How many tasks to keep running" wait_until "Service OpenAPI published" 30 explains services.spec --api-version=ecs.kubecs.io/v1alpha1
EXPECT="Seconds between checks, 5-300" wait_until "TaskDefinition OpenAPI published" 30 explains taskdefinitions.spec.containerDefinitions.healthCheck
explain="$(kubectl explain services.spec --api-version=ecs.kubecs.io/v1alpha1)"
grep -q "desiredCount" <<<"$explain" || fail "explain lacks desiredCount: $explain"
grep -q "How many tasks to keep running" <<<"$explain" || fail "explain lacks the field documentation"
grep -q "placementStrategy" <<<"$explain" || fail "explain lacks placementStrategy"
# The chart installed: its objects exist.
kubectl -n kubecs-system get deployment kubecs-operator kubecs-registry >/dev/null
kubectl get clusterrole kubecs-operator >/dev/null
