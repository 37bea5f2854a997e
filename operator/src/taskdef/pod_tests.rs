//! Tests of the task definition -> pod mapping, one per mapped field group.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod, PodSpec};
use serde_json::{Value, json};

use super::*;
use crate::taskdef::{Phase, container_metadata};

fn spec(v: Value) -> TaskDefinitionSpec {
    serde_json::from_value(v).expect("a task definition")
}

fn render_with(v: Value, opts: &RenderOptions) -> Rendered {
    render_pod(&spec(v), &PodIdentity::default(), opts).expect("a valid task definition")
}

fn render(v: Value) -> Rendered {
    render_with(v, &RenderOptions::default())
}

fn pod_spec(r: &Rendered) -> &PodSpec {
    r.pod.spec.as_ref().unwrap()
}

fn container<'a>(r: &'a Rendered, name: &str) -> &'a Container {
    let s = pod_spec(r);
    s.containers
        .iter()
        .chain(s.init_containers.iter().flatten())
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no container {name}"))
}

fn q(m: &Option<BTreeMap<String, Quantity>>, k: &str) -> Option<String> {
    m.as_ref()?.get(k).map(|q| q.0.clone())
}

fn annotation<'a>(pod: &'a Pod, key: &str) -> Option<&'a str> {
    pod.metadata
        .annotations
        .as_ref()?
        .get(key)
        .map(String::as_str)
}

fn fields(r: &Rendered) -> Vec<&str> {
    r.unsupported.iter().map(|u| u.field.as_str()).collect()
}

#[test]
fn container_resources_follow_ecs_meaning() {
    let r = render(json!({"containerDefinitions": [
        {"name": "a", "image": "x", "cpu": 256, "memory": 512, "memoryReservation": 256},
        {"name": "b", "image": "x", "cpu": 1024, "memory": 128},
        {"name": "c", "image": "x", "memoryReservation": 64}]}));
    let a = container(&r, "a").resources.as_ref().unwrap();
    assert_eq!(q(&a.requests, "cpu").as_deref(), Some("250m"));
    assert_eq!(q(&a.requests, "memory").as_deref(), Some("256Mi"));
    assert_eq!(q(&a.limits, "memory").as_deref(), Some("512Mi"));
    assert_eq!(
        q(&a.limits, "cpu"),
        None,
        "container cpu is a share, not a limit"
    );
    let b = container(&r, "b").resources.as_ref().unwrap();
    assert_eq!(q(&b.requests, "cpu").as_deref(), Some("1"));
    assert_eq!(q(&b.requests, "memory").as_deref(), Some("128Mi"));
    let c = container(&r, "c").resources.as_ref().unwrap();
    assert_eq!(q(&c.requests, "memory").as_deref(), Some("64Mi"));
    assert!(c.limits.is_none(), "memoryReservation is a soft limit");
    assert!(pod_spec(&r).resources.is_none());
}

#[test]
fn task_size_becomes_pod_level_resources() {
    let td = json!({"requiresCompatibilities": ["FARGATE"], "networkMode": "awsvpc",
        "cpu": "1 vCPU", "memory": "2 GB",
        "containerDefinitions": [{"name": "app", "image": "x", "cpu": 512}, {"name": "side", "image": "x"}]});
    let r = render(td.clone());
    let res = pod_spec(&r).resources.as_ref().unwrap();
    assert_eq!(q(&res.requests, "cpu").as_deref(), Some("1"));
    assert_eq!(q(&res.limits, "cpu").as_deref(), Some("1"));
    assert_eq!(q(&res.requests, "memory").as_deref(), Some("2048Mi"));
    assert_eq!(q(&res.limits, "memory").as_deref(), Some("2048Mi"));
    assert!(container(&r, "side").resources.is_none());

    // Without pod-level resources, the task size is shared and caps each container.
    let r = render_with(
        td,
        &RenderOptions {
            pod_level_resources: false,
            ..Default::default()
        },
    );
    assert!(pod_spec(&r).resources.is_none());
    let app = container(&r, "app").resources.as_ref().unwrap();
    assert_eq!(q(&app.requests, "cpu").as_deref(), Some("500m"));
    assert_eq!(q(&app.limits, "cpu").as_deref(), Some("1"));
    assert_eq!(q(&app.requests, "memory").as_deref(), Some("1024Mi"));
    assert_eq!(q(&app.limits, "memory").as_deref(), Some("2048Mi"));
    let side = container(&r, "side").resources.as_ref().unwrap();
    assert_eq!(q(&side.requests, "cpu").as_deref(), Some("500m"));
}

#[test]
fn image_command_environment_and_working_directory() {
    let r = render(
        json!({"containerDefinitions": [{"name": "app", "image": "busybox:1.36", "memory": 64,
        "entryPoint": ["sh", "-c"], "command": ["echo $(date) $$HOME $PATH"],
        "workingDirectory": "/srv", "interactive": true, "pseudoTerminal": true,
        "environment": [{"name": "A", "value": "1"}, {"name": "B", "value": "$(A)"}]}]}),
    );
    let c = container(&r, "app");
    assert_eq!(c.image.as_deref(), Some("busybox:1.36"));
    assert_eq!(c.command.as_deref().unwrap(), ["sh", "-c"]);
    // Kubernetes expands $(VAR) and reduces $$: ECS strings are escaped to stay literal.
    assert_eq!(c.args.as_deref().unwrap(), ["echo $$(date) $$$HOME $PATH"]);
    assert_eq!(c.working_dir.as_deref(), Some("/srv"));
    assert_eq!((c.stdin, c.tty), (Some(true), Some(true)));
    let env = c.env.as_ref().unwrap();
    assert_eq!(env[0].name, "A");
    assert_eq!(env[1].value.as_deref(), Some("$$(A)"));
}

#[test]
fn user_becomes_run_as_ids() {
    let r = render(json!({"containerDefinitions": [
        {"name": "a", "image": "x", "memory": 64, "user": "1000:2000"},
        {"name": "b", "image": "x", "memory": 64, "user": "root"},
        {"name": "c", "image": "x", "memory": 64, "user": "nginx"}]}));
    let a = container(&r, "a").security_context.as_ref().unwrap();
    assert_eq!((a.run_as_user, a.run_as_group), (Some(1000), Some(2000)));
    assert_eq!(
        container(&r, "b")
            .security_context
            .as_ref()
            .unwrap()
            .run_as_user,
        Some(0)
    );
    assert!(container(&r, "c").security_context.is_none());
    assert_eq!(fields(&r), ["containerDefinitions[c].user"]);
}

#[test]
fn ports_per_network_mode() {
    let td = |mode: &str, host_port: Value| {
        json!({"networkMode": mode, "containerDefinitions": [{"name": "web", "image": "nginx", "memory": 64,
            "portMappings": [{"containerPort": 80, "hostPort": host_port, "protocol": "tcp", "name": "http"},
                             {"containerPort": 53, "protocol": "udp", "name": "dns_udp"}]}]})
    };
    let r = render(td("awsvpc", json!(80)));
    let ports = container(&r, "web").ports.as_ref().unwrap();
    assert_eq!(ports[0].container_port, 80);
    assert_eq!(
        ports[0].host_port, None,
        "awsvpc: the task has its own address"
    );
    assert_eq!(ports[0].name.as_deref(), Some("http"));
    assert_eq!(ports[1].protocol.as_deref(), Some("UDP"));
    assert_eq!(ports[1].name, None);
    assert_eq!(fields(&r), ["containerDefinitions[web].portMappings.name"]);
    assert_eq!(pod_spec(&r).host_network, None);

    let r = render(td("bridge", json!(8080)));
    assert_eq!(
        container(&r, "web").ports.as_ref().unwrap()[0].host_port,
        Some(8080)
    );
    let r = render(td("bridge", json!(0)));
    assert_eq!(
        container(&r, "web").ports.as_ref().unwrap()[0].host_port,
        None,
        "an ephemeral host port is the pod IP"
    );

    let r = render(td("host", Value::Null));
    let ports = container(&r, "web").ports.as_ref().unwrap();
    assert_eq!(ports[0].host_port, Some(80));
    assert_eq!(ports[1].host_port, Some(53));
    assert_eq!(pod_spec(&r).host_network, Some(true));
    assert_eq!(
        pod_spec(&r).dns_policy.as_deref(),
        Some("ClusterFirstWithHostNet")
    );

    let r = render(
        json!({"networkMode": "none", "containerDefinitions": [{"name": "a", "image": "x", "memory": 64}]}),
    );
    assert_eq!(fields(&r), ["networkMode"]);
}

#[test]
fn links_become_loopback_host_aliases_and_link_variables() {
    let r = render(json!({"networkMode": "bridge", "containerDefinitions": [
        {"name": "wordpress", "image": "wordpress", "memory": 256, "links": ["mysql:db"],
         "portMappings": [{"containerPort": 80, "hostPort": 80}]},
        {"name": "mysql", "image": "mysql:8", "memory": 512,
         "portMappings": [{"containerPort": 3306}, {"containerPort": 33060}]}]}));
    let aliases = pod_spec(&r).host_aliases.as_ref().unwrap();
    assert_eq!(aliases.len(), 1);
    assert_eq!(aliases[0].ip, "127.0.0.1");
    assert_eq!(aliases[0].hostnames.as_deref().unwrap(), ["db", "mysql"]);
    let env: BTreeMap<_, _> = container(&r, "wordpress")
        .env
        .as_ref()
        .unwrap()
        .iter()
        .map(|e| (e.name.as_str(), e.value.as_deref().unwrap()))
        .collect();
    assert_eq!(env["DB_PORT"], "tcp://127.0.0.1:3306");
    assert_eq!(env["DB_PORT_3306_TCP_ADDR"], "127.0.0.1");
    assert_eq!(env["DB_PORT_33060_TCP_PORT"], "33060");
    assert_eq!(env["DB_NAME"], "/wordpress/db");
}

#[test]
fn volumes_of_every_kind() {
    let r = render(json!({
        "volumes": [
            {"name": "docker_sock", "host": {"sourcePath": "/var/run/docker.sock"}},
            {"name": "scratch", "host": {}},
            {"name": "plain"},
            {"name": "cache", "dockerVolumeConfiguration": {"scope": "task", "driver": "local"}},
            {"name": "shared-data", "dockerVolumeConfiguration": {"scope": "shared", "autoprovision": true, "driver": "rexray/ebs"}},
            {"name": "content", "efsVolumeConfiguration": {"fileSystemId": "fs-0123abcd", "rootDirectory": "/wp/content"}}],
        "containerDefinitions": [
            {"name": "app", "image": "x", "memory": 64, "mountPoints": [
                {"sourceVolume": "docker_sock", "containerPath": "/var/run/docker.sock", "readOnly": true},
                {"sourceVolume": "scratch", "containerPath": "/scratch"},
                {"sourceVolume": "content", "containerPath": "/var/www/html/wp-content"}]},
            {"name": "side", "image": "x", "memory": 64,
             "mountPoints": [{"sourceVolume": "shared-data", "containerPath": "/data"}],
             "volumesFrom": [{"sourceContainer": "app", "readOnly": true}]}]}));
    let vols: BTreeMap<_, _> = pod_spec(&r)
        .volumes
        .as_ref()
        .unwrap()
        .iter()
        .map(|v| (v.name.as_str(), v))
        .collect();
    assert_eq!(
        vols["docker-sock"].host_path.as_ref().unwrap().path,
        "/var/run/docker.sock"
    );
    assert!(vols["scratch"].empty_dir.is_some());
    assert!(vols["plain"].empty_dir.is_some());
    assert!(vols["cache"].empty_dir.is_some());
    assert_eq!(
        vols["shared-data"]
            .persistent_volume_claim
            .as_ref()
            .unwrap()
            .claim_name,
        "shared-data"
    );
    assert_eq!(
        vols["content"]
            .persistent_volume_claim
            .as_ref()
            .unwrap()
            .claim_name,
        "fs-0123abcd"
    );
    let app = container(&r, "app").volume_mounts.as_ref().unwrap();
    assert_eq!(app[0].read_only, Some(true));
    assert_eq!(app[2].sub_path.as_deref(), Some("wp/content"));
    let side = container(&r, "side").volume_mounts.as_ref().unwrap();
    let paths: Vec<_> = side
        .iter()
        .map(|m| (m.mount_path.as_str(), m.read_only))
        .collect();
    assert_eq!(
        paths,
        [
            ("/data", None),
            ("/var/run/docker.sock", Some(true)),
            ("/scratch", Some(true)),
            ("/var/www/html/wp-content", Some(true))
        ]
    );
    assert_eq!(
        r.claims,
        [
            ClaimRef {
                name: "shared-data".into(),
                volume: "shared-data".into(),
                source: "docker",
                storage_class: Some("rexray/ebs".into()),
                autoprovision: true
            },
            ClaimRef {
                name: "fs-0123abcd".into(),
                volume: "content".into(),
                source: "efs",
                storage_class: None,
                autoprovision: false
            }
        ]
    );
}

#[test]
fn security_and_linux_parameters() {
    let r = render(
        json!({"containerDefinitions": [{"name": "a", "image": "x", "memory": 256,
        "privileged": true, "readonlyRootFilesystem": true,
        "dockerSecurityOptions": ["label:type:spc_t", "apparmor:my-profile"],
        "linuxParameters": {"capabilities": {"add": ["NET_ADMIN", "CAP_SYS_PTRACE"], "drop": ["ALL"]},
            "initProcessEnabled": true, "sharedMemorySize": 128,
            "tmpfs": [{"containerPath": "/run", "size": 64}],
            "devices": [{"hostPath": "/dev/fuse"}]}},
        {"name": "b", "image": "x", "memory": 64, "dockerSecurityOptions": ["no-new-privileges"]}]}),
    );
    let a = container(&r, "a");
    let sc = a.security_context.as_ref().unwrap();
    assert_eq!(sc.privileged, Some(true));
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    let caps = sc.capabilities.as_ref().unwrap();
    assert_eq!(caps.add.as_deref().unwrap(), ["NET_ADMIN", "SYS_PTRACE"]);
    assert_eq!(caps.drop.as_deref().unwrap(), ["ALL"]);
    assert_eq!(
        sc.se_linux_options.as_ref().unwrap().type_.as_deref(),
        Some("spc_t")
    );
    let aa = sc.app_armor_profile.as_ref().unwrap();
    assert_eq!(
        (aa.type_.as_str(), aa.localhost_profile.as_deref()),
        ("Localhost", Some("my-profile"))
    );
    assert_eq!(
        container(&r, "b")
            .security_context
            .as_ref()
            .unwrap()
            .allow_privilege_escalation,
        Some(false)
    );
    assert_eq!(pod_spec(&r).share_process_namespace, Some(true));
    let mounts: Vec<_> = a
        .volume_mounts
        .as_ref()
        .unwrap()
        .iter()
        .map(|m| (m.name.as_str(), m.mount_path.as_str()))
        .collect();
    assert_eq!(
        mounts,
        [("kubecs-shm-0", "/dev/shm"), ("kubecs-tmpfs-0-0", "/run")]
    );
    let vols = pod_spec(&r).volumes.as_ref().unwrap();
    let shm = vols[0].empty_dir.as_ref().unwrap();
    assert_eq!(shm.medium.as_deref(), Some("Memory"));
    assert_eq!(shm.size_limit.as_ref().unwrap().0, "128Mi");
    assert_eq!(
        vols[1]
            .empty_dir
            .as_ref()
            .unwrap()
            .size_limit
            .as_ref()
            .unwrap()
            .0,
        "64Mi"
    );
    assert_eq!(
        fields(&r),
        ["containerDefinitions[a].linuxParameters.devices"]
    );
}

#[test]
fn labels_timeouts_hosts_and_dns() {
    let r = render(json!({"networkMode": "bridge", "containerDefinitions": [
        {"name": "a", "image": "x", "memory": 64, "stopTimeout": 90, "hostname": "web.example.com",
         "dockerLabels": {"com.datadoghq.ad.check_names": "[\"nginx\"]", "traefik.http.routers.web.rule": "Host(`a`)", "bad key": "v"},
         "extraHosts": [{"hostname": "db.internal", "ipAddress": "10.0.0.5"}],
         "dnsServers": ["10.0.0.2"], "dnsSearchDomains": ["corp.internal"],
         "ulimits": [{"name": "nofile", "softLimit": 65536, "hardLimit": 65536}]},
        {"name": "b", "image": "x", "memory": 64, "stopTimeout": 10}]}));
    let ps = pod_spec(&r);
    assert_eq!(ps.termination_grace_period_seconds, Some(90));
    assert_eq!(ps.hostname.as_deref(), Some("web"));
    assert_eq!(ps.dns_policy.as_deref(), Some("None"));
    let dns = ps.dns_config.as_ref().unwrap();
    assert_eq!(dns.nameservers.as_deref().unwrap(), ["10.0.0.2"]);
    assert_eq!(dns.searches.as_deref().unwrap(), ["corp.internal"]);
    let aliases = ps.host_aliases.as_ref().unwrap();
    assert_eq!(aliases[0].ip, "10.0.0.5");
    assert_eq!(aliases[0].hostnames.as_deref().unwrap(), ["db.internal"]);
    assert_eq!(
        annotation(&r.pod, "com.datadoghq.ad.check_names"),
        Some("[\"nginx\"]")
    );
    assert_eq!(
        annotation(&r.pod, "traefik.http.routers.web.rule"),
        Some("Host(`a`)")
    );
    assert_eq!(
        annotation(&r.pod, annotations::DOCKER_LABELS),
        Some("{\"bad key\":\"v\"}")
    );
    assert_eq!(
        fields(&r),
        [
            "containerDefinitions.dnsServers",
            "containerDefinitions[a].hostname",
            "containerDefinitions[a].ulimits"
        ]
    );
}

#[test]
fn secrets_credentials_and_roles() {
    let r = render_with(
        json!({"taskRoleArn": "arn:aws:iam::123456789012:role/web-task-role",
        "executionRoleArn": "arn:aws:iam::123456789012:role/ecsTaskExecutionRole",
        "containerDefinitions": [{"name": "a", "image": "private.example.com/a:1", "memory": 64,
            "repositoryCredentials": {"credentialsParameter": "arn:aws:secretsmanager:us-east-1:1:secret:registry-AbCd12"},
            "secrets": [
                {"name": "DB_PASSWORD", "valueFrom": "arn:aws:secretsmanager:us-east-1:1:secret:db:password::"},
                {"name": "API_KEY", "valueFrom": "arn:aws:ssm:us-east-1:1:parameter/prod/api/key"},
                {"name": "TOKEN", "valueFrom": "tokens:github"}]}]}),
        &RenderOptions {
            registry_pull_secret: Some("kubecs-registry".into()),
            ..Default::default()
        },
    );
    let env = container(&r, "a").env.as_ref().unwrap();
    let refs: Vec<_> = env
        .iter()
        .map(|e| {
            let s = e
                .value_from
                .as_ref()
                .unwrap()
                .secret_key_ref
                .as_ref()
                .unwrap();
            (e.name.as_str(), s.name.as_str(), s.key.as_str())
        })
        .collect();
    assert_eq!(
        refs,
        [
            ("DB_PASSWORD", "db", "password"),
            ("API_KEY", "prod-api", "key"),
            ("TOKEN", "tokens", "github")
        ]
    );
    let ps = pod_spec(&r);
    let pulls: Vec<_> = ps
        .image_pull_secrets
        .as_ref()
        .unwrap()
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(pulls, ["registry", "kubecs-registry"]);
    assert_eq!(ps.service_account_name.as_deref(), Some("web-task-role"));
    assert_eq!(
        annotation(&r.pod, annotations::EXECUTION_ROLE),
        Some("arn:aws:iam::123456789012:role/ecsTaskExecutionRole")
    );
}

#[test]
fn health_checks_become_probes() {
    let r = render(json!({"containerDefinitions": [
        {"name": "web", "image": "x", "memory": 64,
         "healthCheck": {"command": ["CMD-SHELL", "curl -f http://localhost/ || exit 1"]}},
        {"name": "api", "image": "x", "memory": 64,
         "healthCheck": {"command": ["CMD", "/bin/check", "--fast"], "interval": 10, "timeout": 2, "retries": 5, "startPeriod": 60}},
        {"name": "aux", "image": "x", "memory": 64, "essential": false,
         "healthCheck": {"command": ["CMD", "true"]}},
        {"name": "none", "image": "x", "memory": 64, "healthCheck": {"command": ["NONE"]}}]}));
    let web = container(&r, "web");
    let rp = web.readiness_probe.as_ref().unwrap();
    assert_eq!(
        rp.exec.as_ref().unwrap().command.as_deref().unwrap(),
        ["/bin/sh", "-c", "curl -f http://localhost/ || exit 1"]
    );
    assert_eq!(
        (rp.period_seconds, rp.timeout_seconds, rp.failure_threshold),
        (Some(30), Some(5), Some(3)),
        "ECS defaults"
    );
    // Liveness is the backstop: two checks later than readiness, so the operator stops an
    // unhealthy task first, in ECS's words.
    let lp = web.liveness_probe.as_ref().unwrap();
    assert_eq!(lp.failure_threshold, Some(5));
    assert_eq!(
        Probe {
            failure_threshold: rp.failure_threshold,
            ..lp.clone()
        },
        *rp
    );
    assert!(web.startup_probe.is_none());

    let api = container(&r, "api");
    assert_eq!(
        api.readiness_probe
            .as_ref()
            .unwrap()
            .exec
            .as_ref()
            .unwrap()
            .command
            .as_deref()
            .unwrap(),
        ["/bin/check", "--fast"]
    );
    let sp = api.startup_probe.as_ref().unwrap();
    assert_eq!(
        (sp.period_seconds, sp.failure_threshold),
        (Some(10), Some(6 + 5))
    );

    let aux = container(&r, "aux");
    assert!(aux.readiness_probe.is_some());
    assert!(
        aux.liveness_probe.is_none(),
        "a non-essential container is never killed for health"
    );
    let none = container(&r, "none");
    assert!(none.readiness_probe.is_none() && none.liveness_probe.is_none());
}

#[test]
fn essential_containers_and_restart_policy() {
    let r = render(json!({"containerDefinitions": [
        {"name": "app", "image": "x", "memory": 64},
        {"name": "log_router", "image": "x", "memory": 64, "essential": false}]}));
    assert_eq!(pod_spec(&r).restart_policy.as_deref(), Some("Never"));
    assert_eq!(
        annotation(&r.pod, annotations::ESSENTIAL_CONTAINERS),
        Some("app")
    );
    let metas = container_metadata(&r.pod).unwrap();
    assert_eq!(metas[1].name, "log-router");
    assert_eq!(metas[1].ecs_name, "log_router");
    assert!(!metas[1].essential);
    assert_eq!(container(&r, "log-router").name, "log-router");
}

#[test]
fn depends_on_becomes_init_containers_and_sidecars() {
    let r = render(json!({"containerDefinitions": [
        {"name": "app", "image": "app", "memory": 64, "startTimeout": 120, "dependsOn": [
            {"containerName": "migrate", "condition": "SUCCESS"},
            {"containerName": "envoy", "condition": "HEALTHY"},
            {"containerName": "xray", "condition": "START"}]},
        {"name": "migrate", "image": "app", "memory": 64, "essential": false, "command": ["migrate"],
         "healthCheck": {"command": ["CMD", "true"]}},
        {"name": "envoy", "image": "envoy", "memory": 64,
         "healthCheck": {"command": ["CMD-SHELL", "curl -s localhost:9901/ready"], "interval": 5}},
        {"name": "xray", "image": "xray", "memory": 64, "essential": false}]}));
    let ps = pod_spec(&r);
    let init: Vec<_> = ps
        .init_containers
        .as_ref()
        .unwrap()
        .iter()
        .map(|c| (c.name.as_str(), c.restart_policy.as_deref()))
        .collect();
    assert_eq!(
        init,
        [
            ("migrate", None),
            ("envoy", Some("Always")),
            ("xray", Some("Always"))
        ]
    );
    assert_eq!(ps.containers.len(), 1);
    // HEALTHY: the kubelet waits for the sidecar's startup probe, bounded by startTimeout.
    let envoy = container(&r, "envoy");
    let sp = envoy.startup_probe.as_ref().unwrap();
    assert_eq!(
        (sp.period_seconds, sp.failure_threshold),
        (Some(5), Some(24))
    );
    assert!(envoy.liveness_probe.is_some(), "envoy is essential");
    // A run-to-completion init container has no probes.
    assert!(container(&r, "migrate").readiness_probe.is_none());
    assert_eq!(fields(&r), ["containerDefinitions[migrate].healthCheck"]);
    let metas = container_metadata(&r.pod).unwrap();
    assert_eq!(
        metas.iter().map(|m| m.phase).collect::<Vec<_>>(),
        [Phase::Main, Phase::Init, Phase::Sidecar, Phase::Sidecar]
    );
    assert_eq!(metas[0].start_timeout, Some(120));
    assert_eq!(metas[0].depends_on[1].container_name, "envoy");
    assert_eq!(
        metas[0].depends_on[1].condition,
        ContainerCondition::Healthy
    );
    assert_eq!(
        annotation(&r.pod, annotations::ESSENTIAL_CONTAINERS),
        Some("app,envoy")
    );
}

#[test]
fn complete_dependencies_are_reported() {
    let r = render(json!({"containerDefinitions": [
        {"name": "app", "image": "x", "memory": 64,
         "dependsOn": [{"containerName": "check", "condition": "COMPLETE"}]},
        {"name": "check", "image": "x", "memory": 64, "essential": false}]}));
    assert_eq!(
        pod_spec(&r).init_containers.as_ref().unwrap()[0].name,
        "check"
    );
    assert_eq!(fields(&r), ["containerDefinitions[app].dependsOn[check]"]);
}

#[test]
fn system_controls_and_gpus() {
    let r = render(json!({"containerDefinitions": [
        {"name": "a", "image": "x", "memory": 64,
         "systemControls": [{"namespace": "net.core.somaxconn", "value": "1024"}],
         "resourceRequirements": [{"type": "GPU", "value": "2"}]}]}));
    let sysctls = pod_spec(&r)
        .security_context
        .as_ref()
        .unwrap()
        .sysctls
        .as_ref()
        .unwrap();
    assert_eq!(
        (sysctls[0].name.as_str(), sysctls[0].value.as_str()),
        ("net.core.somaxconn", "1024")
    );
    let res = container(&r, "a").resources.as_ref().unwrap();
    assert_eq!(q(&res.limits, "nvidia.com/gpu").as_deref(), Some("2"));

    let host = render(json!({"networkMode": "host", "containerDefinitions": [
        {"name": "a", "image": "x", "memory": 64,
         "systemControls": [{"namespace": "net.core.somaxconn", "value": "1024"}]}]}));
    assert!(pod_spec(&host).security_context.is_none());
    assert_eq!(fields(&host), ["containerDefinitions.systemControls"]);
}

#[test]
fn log_configuration_and_firelens() {
    let r = render(json!({"containerDefinitions": [
        {"name": "app", "image": "x", "memory": 64,
         "logConfiguration": {"logDriver": "awsfirelens", "options": {"Name": "cloudwatch"}}},
        {"name": "log_router", "image": "fluent-bit", "memory": 64, "essential": true,
         "firelensConfiguration": {"type": "fluentbit"},
         "logConfiguration": {"logDriver": "awslogs", "options": {"awslogs-group": "/ecs/firelens"}}}]}));
    let logs: Value =
        serde_json::from_str(annotation(&r.pod, annotations::LOG_CONFIGURATION).unwrap()).unwrap();
    assert_eq!(logs["app"]["logDriver"], "awsfirelens");
    assert_eq!(
        logs["log-router"]["options"]["awslogs-group"],
        "/ecs/firelens"
    );
    assert!(annotation(&r.pod, annotations::FIRELENS_CONFIGURATION).is_some());
    // The router starts first (an implicit START dependency) and stops last.
    let init = pod_spec(&r).init_containers.as_ref().unwrap();
    assert_eq!(init[0].name, "log-router");
    assert_eq!(init[0].restart_policy.as_deref(), Some("Always"));
    assert_eq!(
        fields(&r),
        [
            "containerDefinitions[app].logConfiguration",
            "containerDefinitions[log_router].firelensConfiguration",
            "containerDefinitions[log_router].logConfiguration"
        ]
    );
}

#[test]
fn pod_labels_and_names() {
    let identity = PodIdentity {
        name: Some("web-abc12".into()),
        namespace: Some("prod".into()),
        cluster: Some("default".into()),
        revision: Some(3),
        labels: BTreeMap::from([(labels::SERVICE.to_string(), "web".to_string())]),
        ..Default::default()
    };
    let r = render_pod(
        &spec(json!({"family": "web", "containerDefinitions": [{"name": "web", "image": "x", "memory": 64}]})),
        &identity,
        &RenderOptions::default(),
    )
    .unwrap();
    let m = &r.pod.metadata;
    assert_eq!(m.name.as_deref(), Some("web-abc12"));
    assert_eq!(m.namespace.as_deref(), Some("prod"));
    let l = m.labels.as_ref().unwrap();
    assert_eq!(l[labels::CLUSTER], "default");
    assert_eq!(l[labels::FAMILY], "web");
    assert_eq!(l[labels::REVISION], "3");
    assert_eq!(l[labels::SERVICE], "web");
    assert_eq!(l[labels::MANAGED_BY], "kubecs");
    assert_eq!(
        annotation(&r.pod, annotations::TASK_DEFINITION),
        Some("web:3")
    );

    let r = render(
        json!({"family": "My_Family", "containerDefinitions": [{"name": "a", "image": "x", "memory": 64}]}),
    );
    assert_eq!(r.pod.metadata.generate_name.as_deref(), Some("my-family-"));
    assert_eq!(
        r.pod.metadata.labels.as_ref().unwrap()[labels::FAMILY],
        "My_Family"
    );
}

#[test]
fn platform_and_namespaces() {
    let r = render(json!({"pidMode": "host", "ipcMode": "host",
        "runtimePlatform": {"operatingSystemFamily": "LINUX", "cpuArchitecture": "ARM64"},
        "containerDefinitions": [{"name": "a", "image": "x", "memory": 64}]}));
    let ps = pod_spec(&r);
    assert_eq!((ps.host_pid, ps.host_ipc), (Some(true), Some(true)));
    let sel = ps.node_selector.as_ref().unwrap();
    assert_eq!(sel["kubernetes.io/os"], "linux");
    assert_eq!(sel["kubernetes.io/arch"], "arm64");
    let r = render(
        json!({"pidMode": "task", "containerDefinitions": [{"name": "a", "image": "x", "memory": 64}]}),
    );
    assert_eq!(pod_spec(&r).share_process_namespace, Some(true));
}

#[test]
fn container_restart_policy_needs_the_feature() {
    let td = json!({"containerDefinitions": [{"name": "a", "image": "x", "memory": 64,
        "restartPolicy": {"enabled": true, "ignoredExitCodes": [0]}}]});
    let r = render(td.clone());
    assert!(container(&r, "a").restart_policy.is_none());
    assert_eq!(fields(&r), ["containerDefinitions[a].restartPolicy"]);
    let r = render_with(
        td,
        &RenderOptions {
            container_restart_rules: true,
            ..Default::default()
        },
    );
    let a = container(&r, "a");
    assert_eq!(a.restart_policy.as_deref(), Some("Never"));
    let rule = &a.restart_policy_rules.as_ref().unwrap()[0];
    assert_eq!(rule.action, "Restart");
    let codes = rule.exit_codes.as_ref().unwrap();
    assert_eq!(
        (codes.operator.as_str(), codes.values.as_deref()),
        ("NotIn", Some(&[0][..]))
    );
    assert!(container_metadata(&r.pod).unwrap()[0].restart_in_place);
    assert!(r.unsupported.is_empty());
}

#[test]
fn invalid_task_definitions_are_refused_in_ecs_words() {
    let err = render_pod(
        &spec(json!({"containerDefinitions": [{"name": "a", "image": ""}]})),
        &PodIdentity::default(),
        &RenderOptions::default(),
    )
    .unwrap_err();
    assert_eq!(
        err.0,
        [
            "Container.image should not be null or empty.",
            "Invalid setting for container 'a'. At least one of 'memory' or 'memoryReservation' must be specified."
        ]
    );
}

#[test]
fn unsupported_fields_are_listed_and_annotated() {
    let s = spec(
        json!({"ipcMode": "none", "ephemeralStorage": {"sizeInGiB": 50},
        "containerDefinitions": [{"name": "a", "image": "x", "memory": 64,
            "environmentFiles": [{"value": "arn:aws:s3:::b/a.env", "type": "s3"}],
            "disableNetworking": true}]}),
    );
    let u = unsupported_fields(&s);
    let f: Vec<_> = u.iter().map(|u| u.field.as_str()).collect();
    assert_eq!(
        f,
        [
            "containerDefinitions[a].disableNetworking",
            "containerDefinitions[a].environmentFiles",
            "ephemeralStorage",
            "ipcMode"
        ]
    );
    let r = render_pod(&s, &PodIdentity::default(), &RenderOptions::default()).unwrap();
    let ann = annotation(&r.pod, annotations::UNSUPPORTED_FIELDS).unwrap();
    assert!(ann.starts_with("containerDefinitions[a].disableNetworking: "));
    assert_eq!(ann.matches("; ").count(), 3);
}

#[test]
fn the_pod_round_trips_through_json() {
    let r = render(
        json!({"family": "web", "containerDefinitions": [{"name": "web", "image": "nginx", "memory": 64}]}),
    );
    let v = serde_json::to_value(&r.pod).unwrap();
    assert_eq!(v["apiVersion"], "v1");
    assert_eq!(v["kind"], "Pod");
    let back: Pod = serde_json::from_value(v).unwrap();
    assert_eq!(back, r.pod);
    assert_eq!(r.template().spec, r.pod.spec);
}
