"""Every ECS operation kubecs serves, called through boto3 against `kubecs api`, each raw
response checked strictly against botocore's output shape: no member the model lacks, every
value of the model's type, enums among the model's values, timestamps as epoch numbers.

usage: aws_api_check.py ENDPOINT CLUSTER IMAGE NODE REGISTRY
(credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY). Prints the operations checked;
exits 1 on the first mismatch or failed expectation.
"""

import json
import sys
import time

import boto3
import botocore.exceptions
from botocore.config import Config

ENDPOINT, CLUSTER, IMAGE, NODE, REGISTRY = sys.argv[1:6]
checked = set()


def check(shape, value, path):
    t = shape.type_name
    if t == "structure":
        assert isinstance(value, dict), f"{path}: {value!r} is not an object"
        for k, v in value.items():
            assert k in shape.members, f"{path}: member '{k}' is not in the model"
            check(shape.members[k], v, f"{path}.{k}")
    elif t == "list":
        assert isinstance(value, list), f"{path}: {value!r} is not a list"
        for i, v in enumerate(value):
            check(shape.member, v, f"{path}[{i}]")
    elif t == "map":
        assert isinstance(value, dict), f"{path}: {value!r} is not a map"
        for k, v in value.items():
            check(shape.value, v, f"{path}[{k}]")
    elif t == "string":
        assert isinstance(value, str), f"{path}: {value!r} is not a string"
        if shape.enum:
            assert value in shape.enum, f"{path}: {value!r} is not one of {shape.enum}"
    elif t in ("integer", "long"):
        assert isinstance(value, int) and not isinstance(value, bool), f"{path}: {value!r} is not an integer"
    elif t in ("float", "double"):
        assert isinstance(value, (int, float)) and not isinstance(value, bool), f"{path}: {value!r} is not a number"
    elif t == "boolean":
        assert isinstance(value, bool), f"{path}: {value!r} is not a boolean"
    elif t == "timestamp":
        assert isinstance(value, (int, float)) and not isinstance(value, bool), f"{path}: {value!r} is not an epoch timestamp"
    elif t == "blob":
        assert isinstance(value, str), f"{path}: {value!r} is not base64 text"
    else:
        raise AssertionError(f"{path}: unknown shape type {t}")


def on_response(http_response, model, **_):
    if http_response.status_code != 200:
        return
    body = json.loads(http_response.content or b"{}")
    if model.output_shape is not None:
        check(model.output_shape, body, model.name)
    checked.add(model.name)


def client(service):
    c = boto3.client(
        service,
        endpoint_url=ENDPOINT,
        region_name="us-east-1",
        config=Config(retries={"max_attempts": 1}),
    )
    c.meta.events.register("after-call.*.*", on_response)
    return c


def expect_error(code, fn, **kw):
    try:
        fn(**kw)
    except botocore.exceptions.ClientError as e:
        got = e.response["Error"]["Code"]
        assert got == code, f"expected {code}, got {got}: {e}"
        print(f"refused as expected: {code}: {e.response['Error']['Message']}")
        return
    raise AssertionError(f"expected {code}")


def _try(fn):
    """fn(), or None while the registry does not know the repository yet (its watch)."""
    try:
        return fn()
    except botocore.exceptions.ClientError as e:
        if e.response["Error"]["Code"] == "RepositoryNotFoundException":
            return None
        raise


def until(what, fn, seconds=120):
    deadline = time.time() + seconds
    while True:
        v = fn()
        if v:
            return v
        if time.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.5)


ecs = client("ecs")

# Clusters.
c = ecs.create_cluster(clusterName=CLUSTER, tags=[{"key": "team", "value": "api"}])["cluster"]
assert c["clusterName"] == CLUSTER and c["status"] == "ACTIVE", c
assert ecs.create_cluster(clusterName=CLUSTER)["cluster"]["clusterArn"] == c["clusterArn"], "CreateCluster is idempotent"
arn = c["clusterArn"]
assert arn in ecs.list_clusters()["clusterArns"]
d = ecs.describe_clusters(clusters=[CLUSTER, "no-such-cluster"])
assert [f["reason"] for f in d["failures"]] == ["MISSING"], d
ecs.update_cluster(cluster=CLUSTER, settings=[{"name": "containerInsights", "value": "enabled"}])
assert ecs.update_cluster_settings(cluster=CLUSTER, settings=[{"name": "containerInsights", "value": "disabled"}])["cluster"]["settings"] == [{"name": "containerInsights", "value": "disabled"}]
ecs.put_cluster_capacity_providers(cluster=CLUSTER, capacityProviders=[], defaultCapacityProviderStrategy=[])
cps = ecs.describe_capacity_providers()["capacityProviders"]
assert {"FARGATE", "FARGATE_SPOT"} <= {cp["name"] for cp in cps}, cps
assert ecs.describe_capacity_providers(capacityProviders=["nope"])["failures"][0]["reason"] == "MISSING"
until("the real node registered", lambda: ecs.describe_clusters(clusters=[CLUSTER])["clusters"][0]["registeredContainerInstancesCount"] == 1, 60)

# Container instances and attributes.
arns = ecs.list_container_instances(cluster=CLUSTER)["containerInstanceArns"]
assert len(arns) == 1 and arns[0].endswith("/" + NODE), arns
assert ecs.list_container_instances(cluster=CLUSTER, filter="attribute:ecs.os-type == linux")["containerInstanceArns"] == arns
assert ecs.list_container_instances(cluster=CLUSTER, filter="attribute:ecs.os-type == windows")["containerInstanceArns"] == []
ci = ecs.describe_container_instances(cluster=CLUSTER, containerInstances=arns)["containerInstances"][0]
assert ci["ec2InstanceId"] == NODE and ci["agentConnected"] is True, ci
ecs.put_attributes(cluster=CLUSTER, attributes=[{"name": "stack", "value": "prod", "targetType": "container-instance", "targetId": arns[0]}])
listed = ecs.list_attributes(cluster=CLUSTER, targetType="container-instance", attributeName="stack")["attributes"]
assert [(a["name"], a["value"]) for a in listed] == [("stack", "prod")], listed
assert ecs.list_container_instances(cluster=CLUSTER, filter="attribute:stack == prod")["containerInstanceArns"] == arns
ecs.delete_attributes(cluster=CLUSTER, attributes=[{"name": "stack", "targetId": arns[0]}])
assert ecs.list_attributes(cluster=CLUSTER, targetType="container-instance", attributeName="stack")["attributes"] == []
s = ecs.update_container_instances_state(cluster=CLUSTER, containerInstances=arns, status="DRAINING")
assert s["containerInstances"][0]["status"] == "DRAINING", s
s = ecs.update_container_instances_state(cluster=CLUSTER, containerInstances=arns, status="ACTIVE")
assert s["containerInstances"][0]["status"] == "ACTIVE", s

# Task definitions.
web = {
    "family": "api-web",
    "networkMode": "awsvpc",
    "cpu": "128",
    "memory": "64",
    "containerDefinitions": [{
        "name": "web", "image": IMAGE, "entryPoint": ["sh", "-c"],
        "command": ["mkdir -p /srv && echo hi > /srv/index.html && exec httpd -f -p 8080 -h /srv"],
        "portMappings": [{"containerPort": 8080}], "stopTimeout": 2,
    }],
}
r1 = ecs.register_task_definition(**web, tags=[{"key": "app", "value": "web"}])["taskDefinition"]
assert r1["revision"] >= 1 and r1["status"] == "ACTIVE", r1
web["containerDefinitions"][0]["environment"] = [{"name": "REV", "value": "2"}]
r2 = ecs.register_task_definition(**web)["taskDefinition"]
assert r2["revision"] == r1["revision"] + 1, (r1["revision"], r2["revision"])
d = ecs.describe_task_definition(taskDefinition="api-web", include=["TAGS"])
assert d["taskDefinition"]["revision"] == r2["revision"], d
assert r2["taskDefinitionArn"] in ecs.list_task_definitions(familyPrefix="api-web")["taskDefinitionArns"]
assert "api-web" in ecs.list_task_definition_families()["families"]
# Pagination as AWS pages: boto3's paginator, one item a page, sees every revision once.
paged = [a for page in ecs.get_paginator("list_task_definitions").paginate(familyPrefix="api-web", PaginationConfig={"PageSize": 1}) for a in page["taskDefinitionArns"]]
assert paged == [r1["taskDefinitionArn"], r2["taskDefinitionArn"]], paged
expect_error("ClientException", ecs.describe_task_definition, taskDefinition="api-web:999")

# Services.
svc = ecs.create_service(cluster=CLUSTER, serviceName="api-web", taskDefinition=r1["taskDefinitionArn"], desiredCount=1,
                         deploymentConfiguration={"minimumHealthyPercent": 0, "maximumPercent": 200})["service"]
assert svc["status"] == "ACTIVE" and svc["desiredCount"] == 1, svc
expect_error("InvalidParameterException", ecs.create_service, cluster=CLUSTER, serviceName="api-web", taskDefinition="api-web", desiredCount=1)
expect_error("ClusterNotFoundException", ecs.describe_services, cluster="no-such-cluster", services=["api-web"])
assert svc["serviceArn"] in ecs.list_services(cluster=CLUSTER)["serviceArns"]
ecs.get_waiter("services_stable").wait(cluster=CLUSTER, services=["api-web"], WaiterConfig={"Delay": 2, "MaxAttempts": 90})


def completed():
    s = ecs.describe_services(cluster=CLUSTER, services=["api-web"])["services"][0]
    return s if len(s["deployments"]) == 1 and s["deployments"][0]["rolloutState"] == "COMPLETED" else None


# services-stable is ECS's waiter (one deployment, runningCount = desiredCount); the rollout
# completes once the task has been healthy a while.
first = until("the first rollout COMPLETED", completed)
u = ecs.update_service(cluster=CLUSTER, service="api-web", forceNewDeployment=True)["service"]
until("a forced second deployment", lambda: len(ecs.describe_services(cluster=CLUSTER, services=["api-web"])["services"][0]["deployments"]) == 2)
ecs.get_waiter("services_stable").wait(cluster=CLUSTER, services=["api-web"], WaiterConfig={"Delay": 2, "MaxAttempts": 90})
after = until("the forced rollout COMPLETED", completed)
assert after["deployments"][0]["id"] != first["deployments"][0]["id"], "forceNewDeployment made a new deployment"
assert after["taskDefinition"] == r1["taskDefinitionArn"], "with the same task definition"
expect_error("NamespaceNotFoundException", ecs.list_services_by_namespace, namespace="api")

# Deployment history: both deployments, newest first, with the revision each deployed (its
# image resolved to a digest at the deployment's start).
def two_successful():
    b = ecs.list_service_deployments(cluster=CLUSTER, service="api-web")["serviceDeployments"]
    return b if len(b) == 2 and all(x["status"] == "SUCCESSFUL" for x in b) else None


briefs = until("two SUCCESSFUL service deployments", two_successful)
assert briefs[0]["serviceDeploymentArn"].endswith("/" + after["deployments"][0]["id"].split("/")[-1]), briefs
assert ecs.list_service_deployments(cluster=CLUSTER, service="api-web", status=["IN_PROGRESS"])["serviceDeployments"] == []
pages = ecs.list_service_deployments(cluster=CLUSTER, service="api-web", maxResults=1)
assert len(pages["serviceDeployments"]) == 1 and pages["nextToken"], pages
assert ecs.list_service_deployments(cluster=CLUSTER, service="api-web", maxResults=1, nextToken=pages["nextToken"])["serviceDeployments"] == briefs[1:]
expect_error("ServiceNotFoundException", ecs.list_service_deployments, cluster=CLUSTER, service="nope")
arns_sd = [b["serviceDeploymentArn"] for b in briefs]
full = ecs.describe_service_deployments(serviceDeploymentArns=arns_sd + [arns_sd[0] + "0"])
assert [f["reason"] for f in full["failures"]] == ["MISSING"], full["failures"]
newest = full["serviceDeployments"][0]
assert newest["sourceServiceRevisions"][0]["arn"] == full["serviceDeployments"][1]["targetServiceRevision"]["arn"], newest
revs = ecs.describe_service_revisions(serviceRevisionArns=[newest["targetServiceRevision"]["arn"]])["serviceRevisions"]
assert revs[0]["taskDefinition"] == r1["taskDefinitionArn"], revs
img = revs[0]["containerImages"][0]
assert img["containerName"] == "web" and img["image"] == IMAGE and img["imageDigest"].startswith("sha256:"), img
expect_error("ConflictException", ecs.stop_service_deployment, serviceDeploymentArn=arns_sd[0])
expect_error("ServiceDeploymentNotFoundException", ecs.stop_service_deployment, serviceDeploymentArn=arns_sd[0] + "0")
expect_error("InvalidParameterException", ecs.continue_service_deployment, serviceDeploymentArn=arns_sd[0], hookId="no-such-hook")
expect_error("ServiceDeploymentNotFoundException", ecs.continue_service_deployment, serviceDeploymentArn=arns_sd[0] + "0", hookId="x")

# Tags.
ecs.tag_resource(resourceArn=svc["serviceArn"], tags=[{"key": "tier", "value": "front"}])
assert ecs.list_tags_for_resource(resourceArn=svc["serviceArn"])["tags"] == [{"key": "tier", "value": "front"}]
ecs.untag_resource(resourceArn=svc["serviceArn"], tagKeys=["tier"])
assert ecs.list_tags_for_resource(resourceArn=svc["serviceArn"])["tags"] == []
assert ecs.list_tags_for_resource(resourceArn=arn)["tags"] == [{"key": "team", "value": "api"}]

# Tasks.
running = ecs.list_tasks(cluster=CLUSTER, serviceName="api-web")["taskArns"]
assert len(running) == 1, running
p = ecs.update_task_protection(cluster=CLUSTER, tasks=running, protectionEnabled=True, expiresInMinutes=5)["protectedTasks"][0]
assert p["protectionEnabled"] is True and p["expirationDate"], p
assert ecs.get_task_protection(cluster=CLUSTER, tasks=running)["protectedTasks"][0]["protectionEnabled"] is True
ecs.update_task_protection(cluster=CLUSTER, tasks=running, protectionEnabled=False)
assert ecs.get_task_protection(cluster=CLUSTER, tasks=running)["protectedTasks"][0]["protectionEnabled"] is False
t = ecs.describe_tasks(cluster=CLUSTER, tasks=running)["tasks"][0]
assert t["lastStatus"] == "RUNNING" and t["group"] == "service:api-web", t
assert t["attachments"][0]["type"] == "ElasticNetworkInterface", t["attachments"]
job = dict(web, family="api-job")
job["containerDefinitions"] = [{"name": "job", "image": IMAGE, "entryPoint": ["sh", "-c"], "command": ["exit 3"]}]
ecs.register_task_definition(**job)
run = ecs.run_task(cluster=CLUSTER, taskDefinition="api-job", startedBy="api-check")
assert run["failures"] == [] and len(run["tasks"]) == 1, run
job_arn = run["tasks"][0]["taskArn"]
np = ecs.update_task_protection(cluster=CLUSTER, tasks=[job_arn], protectionEnabled=True)
assert [f["reason"] for f in np["failures"]] == ["TASK_NOT_VALID"], np
ecs.get_waiter("tasks_stopped").wait(cluster=CLUSTER, tasks=[job_arn], WaiterConfig={"Delay": 2, "MaxAttempts": 60})
done = ecs.describe_tasks(cluster=CLUSTER, tasks=[job_arn])["tasks"][0]
assert done["containers"][0]["exitCode"] == 3, done["containers"]
assert done["stoppedReason"] == "Essential container in task exited", done
assert job_arn in ecs.list_tasks(cluster=CLUSTER, desiredStatus="STOPPED", startedBy="api-check")["taskArns"]
started = ecs.start_task(cluster=CLUSTER, taskDefinition="api-job", containerInstances=arns, startedBy="api-check")
assert started["failures"] == [] and len(started["tasks"]) == 1, started
assert started["tasks"][0]["containerInstanceArn"] == arns[0], started["tasks"][0]
ecs.get_waiter("tasks_stopped").wait(cluster=CLUSTER, tasks=[started["tasks"][0]["taskArn"]], WaiterConfig={"Delay": 2, "MaxAttempts": 60})
stopped = ecs.stop_task(cluster=CLUSTER, task=running[0], reason="rotating by hand")["task"]
assert stopped["desiredStatus"] == "STOPPED", stopped
assert stopped["stoppedReason"] == "rotating by hand" and stopped["stopCode"] == "UserInitiated", stopped
until("the service replaced the stopped task", lambda: [a for a in ecs.list_tasks(cluster=CLUSTER, serviceName="api-web")["taskArns"] if a != running[0]])
missing = ecs.describe_tasks(cluster=CLUSTER, tasks=["0" * 32])
assert missing["failures"][0]["reason"] == "MISSING", missing

# Tear down in ECS's order.
expect_error("InvalidParameterException", ecs.delete_service, cluster=CLUSTER, service="api-web")
expect_error("ClusterContainsServicesException", ecs.delete_cluster, cluster=CLUSTER)
ecs.update_service(cluster=CLUSTER, service="api-web", desiredCount=0)
gone = ecs.delete_service(cluster=CLUSTER, service="api-web")["service"]
assert gone["status"] == "DRAINING", gone
ecs.deregister_task_definition(taskDefinition=f"api-web:{r1['revision']}")
dl = ecs.delete_task_definitions(taskDefinitions=[f"api-web:{r1['revision']}", f"api-web:{r2['revision']}"])
assert [t["status"] for t in dl["taskDefinitions"]] == ["DELETE_IN_PROGRESS"], dl
assert len(dl["failures"]) == 1, dl
until("the service gone", lambda: ecs.describe_services(cluster=CLUSTER, services=["api-web"])["failures"])


def delete_cluster_once_tasks_stopped():
    # The service's tasks drain after DeleteService; until they are STOPPED, ECS refuses.
    try:
        return ecs.delete_cluster(cluster=CLUSTER)["cluster"]
    except botocore.exceptions.ClientError as e:
        if e.response["Error"]["Code"] != "ClusterContainsTasksException":
            raise
        return None


assert until("the cluster's tasks stopped and the cluster deleted", delete_cluster_once_tasks_stopped)["status"] == "INACTIVE"

# --- ECR ---------------------------------------------------------------------------------------
ecr = client("ecr")
auth = ecr.get_authorization_token()["authorizationData"][0]
assert auth["proxyEndpoint"].endswith(REGISTRY), auth
ecr.describe_registry()
repo = ecr.create_repository(repositoryName="api-check/app", imageTagMutability="MUTABLE", tags=[{"Key": "team", "Value": "api"}])["repository"]
assert repo["repositoryUri"] == f"{REGISTRY}/api-check/app", repo
expect_error("RepositoryAlreadyExistsException", ecr.create_repository, repositoryName="api-check/app")
assert [r["repositoryName"] for r in ecr.describe_repositories(repositoryNames=["api-check/app"])["repositories"]] == ["api-check/app"]
expect_error("RepositoryNotFoundException", ecr.describe_repositories, repositoryNames=["api-check/none"])
# An image: the manifest of IMAGE (in the cluster's registry) put under a new tag, then read back.
src_repo, src_tag = IMAGE.split("/", 1)[1].rsplit(":", 1)
got = until("the source image readable", lambda: ecr.batch_get_image(repositoryName=src_repo, imageIds=[{"imageTag": src_tag}])["images"])
manifest = got[0]["imageManifest"]
media_type = got[0].get("imageManifestMediaType")
json_manifest = json.loads(manifest)
layers = [l["digest"] for l in json_manifest.get("layers", [])] + [json_manifest["config"]["digest"]]
# The blobs must be in the target repository before its manifest: cross-mount them over OCI.
import base64, urllib.request
token = base64.b64decode(auth["authorizationToken"]).decode()
for d in layers:
    req = urllib.request.Request(f"http://{REGISTRY}/v2/api-check/app/blobs/uploads/?mount={d}&from={src_repo}", method="POST",
                                 headers={"Authorization": "Basic " + base64.b64encode(token.encode()).decode()})
    assert urllib.request.urlopen(req).status in (201, 202)
avail = ecr.batch_check_layer_availability(repositoryName="api-check/app", layerDigests=layers)
assert all(l["layerAvailability"] == "AVAILABLE" for l in avail["layers"]), avail
kw = {"imageManifestMediaType": media_type} if media_type else {}
put = until("PutImage once the registry knows the repository",
            lambda: _try(lambda: ecr.put_image(repositoryName="api-check/app", imageManifest=manifest, imageTag="v1", **kw)), 30)
digest = put["image"]["imageId"]["imageDigest"]
details = ecr.describe_images(repositoryName="api-check/app")["imageDetails"]
assert [(d["imageDigest"], d["imageTags"]) for d in details] == [(digest, ["v1"])], details
assert ecr.list_images(repositoryName="api-check/app", filter={"tagStatus": "TAGGED"})["imageIds"] == [{"imageDigest": digest, "imageTag": "v1"}]
ecr.put_image_tag_mutability(repositoryName="api-check/app", imageTagMutability="IMMUTABLE")
policy = json.dumps({"rules": [{"rulePriority": 1, "selection": {"tagStatus": "untagged", "countType": "imageCountMoreThan", "countNumber": 1}, "action": {"type": "expire"}}]})
ecr.put_lifecycle_policy(repositoryName="api-check/app", lifecyclePolicyText=policy)
assert json.loads(ecr.get_lifecycle_policy(repositoryName="api-check/app")["lifecyclePolicyText"])["rules"][0]["rulePriority"] == 1
ecr.start_lifecycle_policy_preview(repositoryName="api-check/app")
ecr.get_waiter("lifecycle_policy_preview_complete").wait(repositoryName="api-check/app", WaiterConfig={"Delay": 1, "MaxAttempts": 30})
ecr.get_lifecycle_policy_preview(repositoryName="api-check/app")
ecr.delete_lifecycle_policy(repositoryName="api-check/app")
expect_error("LifecyclePolicyNotFoundException", ecr.get_lifecycle_policy, repositoryName="api-check/app")
statement = {"Version": "2012-10-17", "Statement": [{"Sid": "pull", "Effect": "Allow", "Principal": "*", "Action": ["ecr:BatchGetImage"]}]}
ecr.set_repository_policy(repositoryName="api-check/app", policyText=json.dumps(statement))
assert json.loads(ecr.get_repository_policy(repositoryName="api-check/app")["policyText"])["Statement"][0]["Sid"] == "pull"
ecr.delete_repository_policy(repositoryName="api-check/app")
expect_error("RepositoryPolicyNotFoundException", ecr.get_repository_policy, repositoryName="api-check/app")
ecr.tag_resource(resourceArn=repo["repositoryArn"], tags=[{"Key": "tier", "Value": "x"}])
assert {"Key": "tier", "Value": "x"} in ecr.list_tags_for_resource(resourceArn=repo["repositoryArn"])["tags"]
ecr.untag_resource(resourceArn=repo["repositoryArn"], tagKeys=["tier"])
expect_error("RepositoryNotEmptyException", ecr.delete_repository, repositoryName="api-check/app")
deleted = ecr.batch_delete_image(repositoryName="api-check/app", imageIds=[{"imageTag": "v1"}])
assert deleted["failures"] == [] and deleted["imageIds"][0]["imageDigest"] == digest, deleted
assert ecr.list_images(repositoryName="api-check/app")["imageIds"] == []
ecr.delete_repository(repositoryName="api-check/app", force=True)

print("ECS and ECR operations checked against botocore's model:", len(checked))
for name in sorted(checked):
    print("  ", name)
