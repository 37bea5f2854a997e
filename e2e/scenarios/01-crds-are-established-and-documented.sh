# A user installs the CRDs and reads their documentation with kubectl explain.
for crd in ecsclusters.ecs.kubecs.io taskdefinitions.ecs.kubecs.io services.ecs.kubecs.io \
           tasks.ecs.kubecs.io repositories.ecr.kubecs.io; do
  expect_eq "$crd Established" True "$(kubectl get crd "$crd" -o 'jsonpath={.status.conditions[?(@.type=="Established")].status}')"
done
explain="$(kubectl explain services.spec --api-version=ecs.kubecs.io/v1alpha1)"
grep -q "desiredCount" <<<"$explain" || fail "explain lacks desiredCount: $explain"
grep -q "How many tasks to keep running" <<<"$explain" || fail "explain lacks the field documentation"
grep -q "placementStrategy" <<<"$explain" || fail "explain lacks placementStrategy"
kubectl explain taskdefinitions.spec.containerDefinitions.healthCheck | grep -q "Seconds between checks, 5-300" \
  || fail "explain lacks healthCheck docs"
# The chart installed: its objects exist.
kubectl -n kubecs-system get deployment kubecs-operator kubecs-registry >/dev/null
kubectl get clusterrole kubecs-operator >/dev/null
