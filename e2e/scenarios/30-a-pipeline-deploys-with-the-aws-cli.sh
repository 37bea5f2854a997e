# A CI pipeline that deploys to ECS with the aws CLI deploys to kubecs by changing only its
# endpoint URL: it registers a real task definition, creates a cluster and a service, waits
# for it to be stable, rolls it to a new revision, runs a one-off task and cleans up — each
# step checked with kubectl too. The calls are SigV4-signed with an access key that stands for
# the pipeline's ServiceAccount, and Kubernetes RBAC decides: a read-only identity is refused
# in AWS's words and creates nothing; unsigned, wrongly signed and stale requests are refused;
# another account sees none of it. boto3 then runs every ECS operation, each answer checked
# against botocore's model.
NS=e2e-pipeline
OTHER=e2e-pipeline-other
fresh_namespace $NS
fresh_namespace $OTHER
aws_tools
node="${REAL_NODES%% *}"
[ -n "$node" ] || fail "no real node"
cleanup() {
  [ -n "${drained_node:-}" ] && kubectl uncordon "$drained_node" >/dev/null 2>&1
  force_repositories $NS
  kubectl label node "$node" ecs.kubecs.io/ecs-cluster- >/dev/null 2>&1 || true
  kubectl delete clusterrolebinding e2e-pipeline-instances --ignore-not-found >/dev/null 2>&1 || true
  kubectl -n kubecs-system delete secret -l app.kubernetes.io/managed-by=kubecs,e2e-access-key=pipeline --ignore-not-found >/dev/null 2>&1 || true
  [ -n "${API_PID:-}" ] && kill "$API_PID" 2>/dev/null || true
}
trap cleanup EXIT

start_api "$WORK/api-30.log" "$E2E_REGISTRY" "$E2E_REGISTRY_KEY"
export AWS_DEFAULT_REGION=us-east-1 AWS_PAGER=""

# Identities: the pipeline (full ECS access in its account), a read-only auditor, and a
# pipeline of another account.
for sa in "$NS/deployer" "$NS/auditor" "$OTHER/deployer"; do
  kubectl -n "${sa%/*}" create serviceaccount "${sa#*/}" >/dev/null
done
kubectl -n $NS create rolebinding deployer --clusterrole=kubecs-ecs-full-access --serviceaccount=$NS:deployer >/dev/null
kubectl -n $NS create rolebinding deployer-ecr --clusterrole=kubecs-ecr-full-access --serviceaccount=$NS:deployer >/dev/null
kubectl -n $OTHER create rolebinding deployer-ecr --clusterrole=kubecs-ecr-full-access --serviceaccount=$OTHER:deployer >/dev/null
kubectl -n $NS create rolebinding auditor --clusterrole=kubecs-ecs-read-only --serviceaccount=$NS:auditor >/dev/null
kubectl -n $OTHER create rolebinding deployer --clusterrole=kubecs-ecs-full-access --serviceaccount=$OTHER:deployer >/dev/null
kubectl create clusterrolebinding e2e-pipeline-instances --clusterrole=kubecs-ecs-container-instances --serviceaccount=$NS:deployer >/dev/null
new_key() { # NS/SA -> "ID SECRET"
  local out id
  out="$("$KUBECS_BIN" create-access-key --service-account "$1")"
  id="$(python3 -c 'import json,sys; print(json.load(sys.stdin)["AccessKey"]["AccessKeyId"])' <<<"$out")"
  kubectl -n kubecs-system label secret "kubecs-access-key-${id,,}" e2e-access-key=pipeline >/dev/null
  python3 -c 'import json,sys; k=json.load(sys.stdin)["AccessKey"]; print(k["AccessKeyId"], k["SecretAccessKey"])' <<<"$out"
}
read -r DEPLOYER_ID DEPLOYER_SECRET <<<"$(new_key $NS/deployer)"
read -r AUDITOR_ID AUDITOR_SECRET <<<"$(new_key $NS/auditor)"
read -r OTHER_ID OTHER_SECRET <<<"$(new_key $OTHER/deployer)"
kubectl -n kubecs-system get secret "kubecs-access-key-${DEPLOYER_ID,,}" -o jsonpath='{.type}' | grep -qx kubecs.io/access-key \
  || fail "the access key is not a kubecs.io/access-key Secret"
as() { # ID SECRET aws ARGS...
  local id="$1" secret="$2"; shift 2
  AWS_ACCESS_KEY_ID="$id" AWS_SECRET_ACCESS_KEY="$secret" aws --endpoint-url "$ECS_ENDPOINT" "$@"
}
ecs() { as "$DEPLOYER_ID" "$DEPLOYER_SECRET" ecs "$@"; }
ecr() { as "$DEPLOYER_ID" "$DEPLOYER_SECRET" ecr "$@"; }

# --- the pipeline ------------------------------------------------------------------------------
# The real node joins the cluster "pipeline" as an ECS agent would with ECS_CLUSTER=pipeline.
kubectl label node "$node" ecs.kubecs.io/ecs-cluster=pipeline --overwrite >/dev/null
# The image: a repository of its own, logged in with get-login-password, pushed with skopeo.
AUTH="$WORK/auth-30.json"
ecr get-login-password | skopeo login --authfile "$AUTH" --tls-verify=false -u AWS --password-stdin "$E2E_REGISTRY" >/dev/null
repo_uri="$(ecr create-repository --repository-name pipeline/web --query repository.repositoryUri --output text)"
expect_eq "the repository URI" "$E2E_REGISTRY/pipeline/web" "$repo_uri"
expect_eq "kubectl sees the Repository" "pipeline/web" \
  "$(kubectl get repositories.ecr.kubecs.io -n $NS -o jsonpath='{.items[0].spec.repositoryName}')"
# The registry learns of the new repository through its watch: retry the push until it does.
wait_until "skopeo pushes to $repo_uri" 30 skopeo copy --authfile "$AUTH" --src-tls-verify=false --dest-tls-verify=false \
  "docker://$BUSYBOX_IMAGE" "docker://$repo_uri:v1"
expect_eq "describe-images shows the tag" v1 "$(ecr describe-images --repository-name pipeline/web --query 'imageDetails[0].imageTags[0]' --output text)"
IMAGE="$repo_uri:v1"
python3 - "$IMAGE" v1 > "$WORK/web-td.json" <<'PY'
import json, sys
image, page = sys.argv[1:3]
print(json.dumps({
  "family": "web", "networkMode": "awsvpc", "cpu": "128", "memory": "64",
  "requiresCompatibilities": ["EC2"],
  "containerDefinitions": [{
    "name": "web", "image": image, "essential": True,
    "entryPoint": ["sh", "-c"],
    "command": [f"mkdir -p /srv && echo {page} > /srv/index.html && exec httpd -f -p 8080 -h /srv"],
    "portMappings": [{"containerPort": 8080, "protocol": "tcp"}],
    "stopTimeout": 2,
    "healthCheck": {"command": ["CMD-SHELL", f"wget -qO- http://127.0.0.1:8080/ | grep -q {page}"], "interval": 5, "timeout": 2, "retries": 2}
  }]
}))
PY
rev1="$(ecs register-task-definition --cli-input-json "file://$WORK/web-td.json" --query taskDefinition.revision --output text)"
expect_eq "revision 1 registered" 1 "$rev1"
expect_eq "kubectl sees web:1" 1 "$(jp taskdefinitions web '{.status.latestRevision}' $NS)"
ecs create-cluster --cluster-name pipeline --query cluster.status --output text | grep -qx ACTIVE || fail "create-cluster"
wait_until "the pipeline cluster registers the real node" 60 field_eq ecsclusters pipeline '{.status.registeredContainerInstancesCount}' 1 $NS
ecs create-service --cluster pipeline --service-name web --task-definition web --desired-count 2 \
  --deployment-configuration minimumHealthyPercent=50,maximumPercent=200 --query service.serviceName --output text | grep -qx web \
  || fail "create-service"
expect_eq "kubectl sees the service" "pipeline web" "$(jp services.ecs.kubecs.io web '{.spec.cluster} {.spec.taskDefinition}' $NS)"
ecs wait services-stable --cluster pipeline --services web
expect_eq "two running tasks" 2 "$(ecs describe-services --cluster pipeline --services web --query 'services[0].runningCount' --output text)"
# services-stable means one deployment with runningCount = desiredCount (ECS's waiter); the
# rollout completes once the tasks have been healthy a while.
wait_until "kubectl: web:1 COMPLETED with 2 tasks" 60 rollout_is $NS web web:1 COMPLETED 2

sed 's/echo v1/echo v2/; s/grep -q v1/grep -q v2/' "$WORK/web-td.json" > "$WORK/web-td-2.json"
expect_eq "revision 2 registered" 2 "$(ecs register-task-definition --cli-input-json "file://$WORK/web-td-2.json" --query taskDefinition.revision --output text)"
ecs update-service --cluster pipeline --service web --task-definition web:2 --query service.taskDefinition --output text >/dev/null
deployments() { ecs describe-services --cluster pipeline --services web --query 'length(services[0].deployments)' --output text; }
two_deployments() { [ "$(deployments)" = 2 ]; }
wait_until "two deployments while web:2 rolls out" 60 two_deployments
ecs wait services-stable --cluster pipeline --services web
expect_eq "one deployment after the rollout" 1 "$(deployments)"
expect_eq "the primary runs web:2" "arn:aws:ecs:kubecs:$NS:task-definition/web:2" \
  "$(ecs describe-services --cluster pipeline --services web --query 'services[0].deployments[0].taskDefinition' --output text)"
wait_until "kubectl: web:2 COMPLETED with 2 tasks" 60 rollout_is $NS web web:2 COMPLETED 2
# Version consistency: the tasks run the pushed image pinned to the digest describe-images
# shows, and describe-tasks shows the tag as the task definition names it, with that digest.
digest="$(ecr describe-images --repository-name pipeline/web --image-ids imageTag=v1 --query 'imageDetails[0].imageDigest' --output text)"
expect_eq "the tasks run the pushed image by its digest" "$IMAGE@$digest" \
  "$(kubectl get pods -n $NS -l ecs.kubecs.io/service=web -o jsonpath='{.items[*].spec.containers[0].image}' | tr ' ' '\n' | sort -u)"
task_arns="$(ecs list-tasks --cluster pipeline --service-name web --query taskArns --output text)"
expect_eq "describe-tasks: the image as named, and the digest it runs" "$IMAGE $digest" \
  "$(ecs describe-tasks --cluster pipeline --tasks $task_arns --query 'tasks[].containers[0].[image, imageDigest]' --output text | sort -u | tr '\t' ' ')"
for ip in $(kubectl get pods -n $NS -l ecs.kubecs.io/service=web -o jsonpath='{range .items[*]}{.status.podIP}{" "}{end}'); do
  expect_eq "a web:2 task answers HTTP" v2 "$(curl -s --max-time 5 "http://$ip:8080/")"
done

# A one-off task: its exit code and ECS's reason come back through describe-tasks.
python3 - "$BUSYBOX_IMAGE" > "$WORK/job-td.json" <<'PY'
import json, sys
print(json.dumps({"family": "migrate", "networkMode": "awsvpc", "cpu": "128", "memory": "64",
  "containerDefinitions": [{"name": "migrate", "image": sys.argv[1], "entryPoint": ["sh", "-c"], "command": ["echo migrated; exit 0"]}]}))
PY
ecs register-task-definition --cli-input-json "file://$WORK/job-td.json" >/dev/null
task="$(ecs run-task --cluster pipeline --task-definition migrate --started-by pipeline --query 'tasks[0].taskArn' --output text)"
case "$task" in arn:aws:ecs:kubecs:$NS:task/pipeline/*) ;; *) fail "run-task returned '$task'";; esac
ecs wait tasks-stopped --cluster pipeline --tasks "$task"
expect_eq "the task's exit code" 0 "$(ecs describe-tasks --cluster pipeline --tasks "$task" --query 'tasks[0].containers[0].exitCode' --output text)"
# The waiter reads the pod; the Task object's status follows once its controller has seen it.
task_object="$(kubectl get tasks.ecs.kubecs.io -n $NS -o jsonpath='{.items[0].metadata.name}')"
wait_until "kubectl sees the Task STOPPED" 30 field_eq tasks.ecs.kubecs.io "$task_object" '{.status.lastStatus}' STOPPED $NS

ecs update-service --cluster pipeline --service web --desired-count 0 >/dev/null
ecs delete-service --cluster pipeline --service web --query service.status --output text | grep -qx DRAINING || fail "delete-service"
wait_until "kubectl: the service is gone" 60 bash -c "! kubectl get services.ecs.kubecs.io web -n $NS >/dev/null 2>&1"

# --- draining a container instance: its service tasks move, within the service's bounds -----------
all_nodes_cluster $NS kwok-pool
ecs create-service --cluster kwok-pool --service-name spread --task-definition web:1 --desired-count 3 \
  --placement-strategy type=spread,field=instanceId --deployment-configuration minimumHealthyPercent=100,maximumPercent=200 >/dev/null
wait_until "spread:1 COMPLETED with 3 tasks" 90 rollout_is $NS spread web:1 COMPLETED 3
drained_node="$(kubectl get pods -n $NS -l ecs.kubecs.io/service=spread -o jsonpath='{.items[0].spec.nodeName}')"
ecs update-container-instances-state --cluster kwok-pool --container-instances "$drained_node" --status DRAINING \
  --query 'containerInstances[0].status' --output text | grep -qx DRAINING || fail "not DRAINING"
expect_eq "kubectl: the Node is cordoned" true "$(kubectl get node "$drained_node" -o jsonpath='{.spec.unschedulable}')"
on_drained() { kubectl get pods -n $NS -l ecs.kubecs.io/service=spread -o jsonpath="{range .items[?(@.spec.nodeName=='$drained_node')]}{.metadata.name}{' '}{end}"; }
nothing_on_drained() { [ -z "$(on_drained)" ] && rollout_is $NS spread web:1 COMPLETED 3 && [ "$(ecs describe-services --cluster kwok-pool --services spread --query 'services[0].runningCount' --output text)" = 3 ]; }
wait_until "the drained instance's task replaced elsewhere" 90 nothing_on_drained
ecs update-container-instances-state --cluster kwok-pool --container-instances "$drained_node" --status ACTIVE >/dev/null
expect_eq "kubectl: the Node is schedulable again" "" "$(kubectl get node "$drained_node" -o jsonpath='{.spec.unschedulable}' | sed 's/false//')"
drained_node=""

# --- task scale-in protection: a protected task survives scale-in from 4 to 1, and a deployment
# waits for it until its protection expires ---------------------------------------------------------
ecs update-service --cluster kwok-pool --service spread --desired-count 4 >/dev/null
wait_until "spread:1 COMPLETED with 4 tasks" 90 rollout_is $NS spread web:1 COMPLETED 4
kept="$(ecs list-tasks --cluster kwok-pool --service-name spread --query 'taskArns[0]' --output text)"
expires="$(ecs update-task-protection --cluster kwok-pool --tasks "$kept" --protection-enabled \
  --expires-in-minutes 1 --query 'protectedTasks[0].expirationDate' --output text)"
# Protected until this second (the planner compares whole seconds).
# (the CLI prints it as epoch seconds, or as ISO 8601 with cli_timestamp_format=iso8601)
until_s="$(python3 -c '
import datetime, sys
v = sys.argv[1]
try:
    print(int(float(v)))
except ValueError:
    print(int(datetime.datetime.fromisoformat(v).timestamp()))' "$expires")"
ecs update-service --cluster kwok-pool --service spread --desired-count 1 >/dev/null
only_kept() { [ "$(ecs list-tasks --cluster kwok-pool --service-name spread --query 'taskArns' --output text)" = "$kept" ]; }
wait_until "scale-in to 1 keeps the protected task" 90 only_kept
expect_eq "get-task-protection" True "$(ecs get-task-protection --cluster kwok-pool --tasks "$kept" --query 'protectedTasks[0].protectionEnabled' --output text)"
ecs update-service --cluster kwok-pool --service spread --task-definition web:2 >/dev/null
kept_alive() { ecs describe-tasks --cluster kwok-pool --tasks "$kept" --query 'tasks[0].lastStatus' --output text | grep -qx RUNNING; }
while [ "$(date +%s)" -lt $(( until_s - 15 )) ]; do
  kept_alive || fail "the protected task stopped $(( until_s - $(date +%s) ))s before its protection ended"
  sleep 3
done
rollout_is $NS spread web:2 COMPLETED 1 && fail "the rollout completed while the protected old task ran"
wait_until "the rollout completes once the protection expired" 90 rollout_is $NS spread web:2 COMPLETED 1
[ "$(date +%s)" -ge "$until_s" ] || fail "the rollout completed before the protection expired"
ecs delete-service --cluster kwok-pool --service spread --force >/dev/null

# --- refusals ------------------------------------------------------------------------------------
refused() { # CODE ARGS... : the aws CLI fails with CODE
  local out
  if out="$("$@" 2>&1)"; then fail "expected $1 to be refused: $out"; fi
  grep -qF "($CODE)" <<<"$out" || fail "expected ($CODE), got: $out"
  echo "refused as expected: $out"
}
CODE=AccessDeniedException refused as "$AUDITOR_ID" "$AUDITOR_SECRET" ecs create-service --cluster pipeline --service-name sneaky --task-definition web --desired-count 1
kubectl get services.ecs.kubecs.io sneaky -n $NS >/dev/null 2>&1 && fail "the refused create-service created a service"
expect_eq "the auditor may read" "pipeline" "$(as "$AUDITOR_ID" "$AUDITOR_SECRET" ecs describe-clusters --clusters pipeline --query 'clusters[0].clusterName' --output text)"
CODE=InvalidSignatureException refused as "$DEPLOYER_ID" "wrong-secret" ecs list-clusters
CODE=UnrecognizedClientException refused as "AKIAKUBECSNOSUCHKEY0" "$DEPLOYER_SECRET" ecs list-clusters
unsigned="$(curl -s -X POST -H 'Content-Type: application/x-amz-json-1.1' -H 'X-Amz-Target: AmazonEC2ContainerServiceV20141113.ListClusters' -d '{}' "$ECS_ENDPOINT/")"
grep -q '"MissingAuthenticationTokenException"' <<<"$unsigned" || fail "an unsigned request was not refused: $unsigned"
stale="$(AWS_ACCESS_KEY_ID=$DEPLOYER_ID AWS_SECRET_ACCESS_KEY=$DEPLOYER_SECRET python3 - "$ECS_ENDPOINT" <<'PY'
import datetime, sys, urllib.request
from unittest import mock
import botocore.auth, botocore.session
from botocore.awsrequest import AWSRequest
creds = botocore.session.get_session().get_credentials()
req = AWSRequest(method="POST", url=sys.argv[1] + "/", data=b"{}", headers={
    "Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "AmazonEC2ContainerServiceV20141113.ListClusters"})
then = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=20)
with mock.patch.object(botocore.auth.datetime, "datetime", wraps=datetime.datetime) as dt:
    dt.now.return_value = then
    dt.utcnow.return_value = then.replace(tzinfo=None)
    botocore.auth.SigV4Auth(creds, "ecs", "us-east-1").add_auth(req)
print(req.headers["X-Amz-Date"], file=sys.stderr)
r = urllib.request.Request(req.url, data=req.body, headers=dict(req.headers), method="POST")
try:
    urllib.request.urlopen(r)
except urllib.error.HTTPError as e:
    print(e.read().decode())
PY
)"
grep -q 'Signature expired' <<<"$stale" || fail "a request signed 20 minutes ago was not refused: $stale"
echo "stale request refused: $stale"

# --- accounts ------------------------------------------------------------------------------------
expect_eq "the other account sees no repository of ours" "[]" \
  "$(as "$OTHER_ID" "$OTHER_SECRET" ecr describe-repositories --query 'repositories[?repositoryName==`pipeline/web`]' --output json | tr -d ' \n')"
expect_eq "the other account sees no cluster" "[]" "$(as "$OTHER_ID" "$OTHER_SECRET" ecs list-clusters --query clusterArns --output json | tr -d ' \n')"
CODE=ClusterNotFoundException refused as "$OTHER_ID" "$OTHER_SECRET" ecs describe-services --cluster pipeline --services web
CODE=AccessDeniedException refused as "$OTHER_ID" "$OTHER_SECRET" ecs describe-clusters --clusters "arn:aws:ecs:kubecs:$NS:cluster/pipeline"
ecs delete-cluster --cluster pipeline >/dev/null
CODE=RepositoryNotEmptyException refused ecr delete-repository --repository-name pipeline/web
ecr delete-repository --repository-name pipeline/web --force >/dev/null
wait_until "kubectl: the repository is gone" 60 bash -c "[ -z \"\$(kubectl get repositories.ecr.kubecs.io -n $NS -o name)\" ]"

# --- every operation, through boto3, against botocore's model --------------------------------------
kubectl label node "$node" ecs.kubecs.io/ecs-cluster=api-check --overwrite >/dev/null
AWS_ACCESS_KEY_ID=$DEPLOYER_ID AWS_SECRET_ACCESS_KEY=$DEPLOYER_SECRET \
  python3 "$E2E_DIR/scenarios/aws_api_check.py" "$ECS_ENDPOINT" api-check "$BUSYBOX_IMAGE" "$node" "$E2E_REGISTRY"
