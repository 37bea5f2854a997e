//! Renders every task definition of the corpus in `e2e/taskdefs/` (ECS JSON as users publish
//! it) and checks that it validates, produces a pod, and that the pod keeps the rules the API
//! server enforces (names, volumes, ports, probes, pod-level resources).

use std::collections::BTreeSet;
use std::path::PathBuf;

use k8s_openapi::api::core::v1::{Container, Pod};
use kubecs::api::labels;
use kubecs::taskdef::{
    self, Phase, PodIdentity, RenderOptions, compatibilities, container_metadata, input, names,
    requires_attributes, units,
};

fn corpus() -> Vec<(String, String)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../e2e/taskdefs");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect()
}

fn quantity_cpu_units(q: &str) -> i64 {
    match q.strip_suffix('m') {
        Some(m) => m.parse::<i64>().unwrap() * 1024 / 1000,
        None => q.parse::<i64>().unwrap() * 1024,
    }
}

fn quantity_mib(q: &str) -> i64 {
    q.strip_suffix("Mi").unwrap().parse().unwrap()
}

/// The API server's rules that a translation can get wrong.
fn check_pod(file: &str, pod: &Pod) {
    let spec = pod.spec.as_ref().expect("a pod spec");
    assert!(!spec.containers.is_empty(), "{file}: no containers");
    assert_eq!(spec.restart_policy.as_deref(), Some("Never"), "{file}");
    let init = spec.init_containers.clone().unwrap_or_default();
    let all: Vec<&Container> = init.iter().chain(&spec.containers).collect();

    let mut container_names = BTreeSet::new();
    for c in &all {
        assert!(
            names::is_dns_label(&c.name),
            "{file}: container name {}",
            c.name
        );
        assert!(
            container_names.insert(&c.name),
            "{file}: duplicate {}",
            c.name
        );
        assert!(c.image.as_deref().is_some_and(|i| !i.is_empty()), "{file}");
    }
    for c in &spec.containers {
        assert!(
            c.restart_policy.is_none(),
            "{file}: {} restartPolicy",
            c.name
        );
    }
    for c in &init {
        let sidecar = c.restart_policy.as_deref() == Some("Always");
        if !sidecar {
            assert!(
                c.readiness_probe.is_none()
                    && c.liveness_probe.is_none()
                    && c.startup_probe.is_none(),
                "{file}: init container {} has probes",
                c.name
            );
        }
    }

    let volumes: BTreeSet<_> = spec
        .volumes
        .iter()
        .flatten()
        .map(|v| {
            assert!(names::is_dns_label(&v.name), "{file}: volume {}", v.name);
            let sources = [
                v.empty_dir.is_some(),
                v.host_path.is_some(),
                v.persistent_volume_claim.is_some(),
            ];
            assert_eq!(
                sources.iter().filter(|s| **s).count(),
                1,
                "{file}: {}",
                v.name
            );
            v.name.clone()
        })
        .collect();
    assert_eq!(
        volumes.len(),
        spec.volumes.as_ref().map_or(0, Vec::len),
        "{file}: duplicate volume names"
    );

    let mut host_ports = BTreeSet::new();
    for c in &all {
        let mut paths = BTreeSet::new();
        for m in c.volume_mounts.iter().flatten() {
            assert!(
                volumes.contains(&m.name),
                "{file}: {} mounts {}",
                c.name,
                m.name
            );
            assert!(
                paths.insert(&m.mount_path),
                "{file}: {} mounts {} twice",
                c.name,
                m.mount_path
            );
            assert!(m.mount_path.starts_with('/'), "{file}");
            if let Some(sp) = &m.sub_path {
                assert!(
                    !sp.starts_with('/') && !sp.contains(".."),
                    "{file}: subPath {sp}"
                );
            }
        }
        let mut port_names = BTreeSet::new();
        for p in c.ports.iter().flatten() {
            assert!((1..=65535).contains(&p.container_port), "{file}");
            if let Some(n) = &p.name {
                assert!(names::is_port_name(n), "{file}: port name {n}");
                assert!(port_names.insert(n), "{file}: duplicate port name {n}");
            }
            if spec.host_network == Some(true) {
                assert_eq!(
                    p.host_port,
                    Some(p.container_port),
                    "{file}: hostNetwork ports"
                );
            }
            if let Some(hp) = p.host_port {
                assert!(
                    host_ports.insert((hp, p.protocol.clone())),
                    "{file}: host port {hp} used twice"
                );
            }
        }
        for probe in [&c.readiness_probe, &c.liveness_probe, &c.startup_probe]
            .into_iter()
            .flatten()
        {
            assert!(probe.period_seconds.unwrap_or(10) >= 1, "{file}");
            assert!(probe.timeout_seconds.unwrap_or(1) >= 1, "{file}");
            assert!(probe.failure_threshold.unwrap_or(3) >= 1, "{file}");
            assert_eq!(probe.success_threshold, Some(1), "{file}");
            assert!(
                !probe
                    .exec
                    .as_ref()
                    .unwrap()
                    .command
                    .as_ref()
                    .unwrap()
                    .is_empty()
            );
        }
        if let Some(r) = &c.resources
            && let (Some(req), Some(lim)) = (&r.requests, &r.limits)
            && let (Some(rm), Some(lm)) = (req.get("memory"), lim.get("memory"))
        {
            assert!(
                quantity_mib(&rm.0) <= quantity_mib(&lm.0),
                "{file}: {} memory",
                c.name
            );
        }
        if let Some(sc) = &c.security_context
            && sc.allow_privilege_escalation == Some(false)
        {
            assert_ne!(sc.privileged, Some(true), "{file}");
        }
    }

    // Pod-level resources hold the containers' requests and limits.
    if let Some(pr) = &spec.resources {
        let req = pr.requests.as_ref().unwrap();
        let sum = |key: &str, f: fn(&str) -> i64| -> i64 {
            all.iter()
                .filter_map(|c| c.resources.as_ref()?.requests.as_ref()?.get(key))
                .map(|q| f(&q.0))
                .sum()
        };
        if let Some(cpu) = req.get("cpu") {
            assert!(
                sum("cpu", quantity_cpu_units) <= quantity_cpu_units(&cpu.0),
                "{file}: cpu"
            );
        }
        if let Some(mem) = req.get("memory") {
            assert!(
                sum("memory", quantity_mib) <= quantity_mib(&mem.0),
                "{file}: memory"
            );
            for c in &all {
                if let Some(l) = c
                    .resources
                    .as_ref()
                    .and_then(|r| r.limits.as_ref()?.get("memory"))
                {
                    assert!(
                        quantity_mib(&l.0) <= quantity_mib(&mem.0),
                        "{file}: {} limit",
                        c.name
                    );
                }
            }
        }
    }

    if spec.dns_policy.as_deref() == Some("None") {
        let dns = spec
            .dns_config
            .as_ref()
            .expect("dnsConfig with dnsPolicy None");
        assert!(!dns.nameservers.as_ref().unwrap().is_empty(), "{file}");
    }
    for alias in spec.host_aliases.iter().flatten() {
        for h in alias.hostnames.iter().flatten() {
            assert!(names::is_dns_subdomain(h), "{file}: host alias {h}");
        }
    }
    if spec.share_process_namespace == Some(true) {
        assert_ne!(spec.host_pid, Some(true), "{file}");
    }
    if let Some(sa) = &spec.service_account_name {
        assert!(names::is_dns_subdomain(sa), "{file}: {sa}");
    }
    if let Some(h) = &spec.hostname {
        assert!(names::is_dns_label(h), "{file}: {h}");
    }
    for s in spec
        .security_context
        .iter()
        .flat_map(|s| s.sysctls.iter().flatten())
    {
        if spec.host_network == Some(true) {
            assert!(!s.name.starts_with("net."), "{file}: {}", s.name);
        }
    }

    let meta = &pod.metadata;
    for (k, v) in meta.labels.iter().flatten() {
        assert!(names::is_qualified_name(k), "{file}: label key {k}");
        assert!(names::is_label_value(v), "{file}: label value {v}");
    }
    let mut total = 0;
    for (k, v) in meta.annotations.iter().flatten() {
        assert!(names::is_qualified_name(k), "{file}: annotation key {k}");
        total += k.len() + v.len();
    }
    assert!(total < 256 * 1024, "{file}: annotations too large");
}

#[test]
fn every_corpus_task_definition_renders_a_valid_pod() {
    let corpus = corpus();
    assert!(
        corpus.len() >= 10,
        "the corpus holds {} task definitions",
        corpus.len()
    );
    for (file, text) in &corpus {
        let parsed = input::parse_task_definition(text).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert!(parsed.warnings.is_empty(), "{file}: {:?}", parsed.warnings);
        taskdef::validate(&parsed.spec).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert!(!compatibilities(&parsed.spec).is_empty(), "{file}");
        let _ = requires_attributes(&parsed.spec);
        let family = parsed
            .spec
            .family
            .clone()
            .expect("every corpus file names its family");
        let identity = PodIdentity {
            name: Some(names::dns_label(&family)),
            namespace: Some("default".into()),
            cluster: Some("default".into()),
            family: Some(family.clone()),
            revision: Some(parsed.revision.unwrap_or(1)),
            ..Default::default()
        };
        for opts in [
            RenderOptions::default(),
            RenderOptions {
                pod_level_resources: false,
                container_restart_rules: true,
                registry_pull_secret: Some("kubecs-registry".into()),
            },
        ] {
            let rendered = taskdef::render_pod(&parsed.spec, &identity, &opts)
                .unwrap_or_else(|e| panic!("{file}: {e}"));
            check_pod(file, &rendered.pod);
            let labels = rendered.pod.metadata.labels.as_ref().unwrap();
            assert_eq!(
                labels[labels::FAMILY],
                names::label_value(&family),
                "{file}"
            );
            let metas = container_metadata(&rendered.pod).expect("container metadata");
            assert_eq!(
                metas.len(),
                parsed.spec.container_definitions.len(),
                "{file}"
            );
            // Round trip as the API server would store it.
            let json = serde_json::to_string(&rendered.pod).unwrap();
            let back: Pod = serde_json::from_str(&json).unwrap();
            assert_eq!(back, rendered.pod, "{file}");
            let yaml = serde_yaml::to_string(&rendered.pod).unwrap();
            let back: Pod = serde_yaml::from_str(&yaml).unwrap();
            assert_eq!(back, rendered.pod, "{file}");
        }
    }
}

fn render(file: &str) -> (taskdef::Rendered, taskdef::TaskDefinitionSpec) {
    let text = corpus()
        .into_iter()
        .find(|(f, _)| f == file)
        .unwrap_or_else(|| panic!("{file} is in the corpus"))
        .1;
    let parsed = input::parse_task_definition(&text).unwrap();
    let r = taskdef::render_pod(
        &parsed.spec,
        &PodIdentity::default(),
        &RenderOptions::default(),
    )
    .unwrap();
    (r, parsed.spec)
}

#[test]
fn wordpress_links_resolve_to_the_pod() {
    let (r, _) = render("wordpress-mysql-bridge.json");
    let spec = r.pod.spec.as_ref().unwrap();
    let alias = &spec.host_aliases.as_ref().unwrap()[0];
    assert_eq!(alias.ip, "127.0.0.1");
    assert_eq!(alias.hostnames.as_deref().unwrap(), ["mysql"]);
    assert_eq!(r.claims[0].name, "mysql-data");
    assert!(r.claims[0].autoprovision);
}

#[test]
fn batch_job_runs_its_success_dependencies_first() {
    let (r, _) = render("batch-etl-depends-on.json");
    let spec = r.pod.spec.as_ref().unwrap();
    let init: Vec<_> = spec
        .init_containers
        .as_ref()
        .unwrap()
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(init, ["fetch", "schema-check"]);
    assert_eq!(spec.containers[0].name, "transform");
    let metas = container_metadata(&r.pod).unwrap();
    assert_eq!(metas[2].start_timeout, Some(600));
    assert!(r.unsupported.iter().any(|u| u.field == "ephemeralStorage"));
}

#[test]
fn app_mesh_waits_for_a_healthy_envoy() {
    let (r, _) = render("appmesh-envoy.json");
    let spec = r.pod.spec.as_ref().unwrap();
    let init = spec.init_containers.as_ref().unwrap();
    assert_eq!(init[0].name, "envoy");
    assert_eq!(init[0].restart_policy.as_deref(), Some("Always"));
    assert!(init[0].startup_probe.is_some());
    assert_eq!(init[1].name, "xray-daemon");
    assert!(
        r.unsupported
            .iter()
            .any(|u| u.field == "proxyConfiguration")
    );
    let metas = container_metadata(&r.pod).unwrap();
    assert_eq!(metas[1].phase, Phase::Sidecar);
}

#[test]
fn fargate_app_sizes_and_secrets() {
    let (r, spec) = render("fargate-api-secrets.json");
    let ps = r.pod.spec.as_ref().unwrap();
    let res = ps.resources.as_ref().unwrap().limits.as_ref().unwrap();
    assert_eq!(res["cpu"].0, "1");
    assert_eq!(res["memory"].0, "2048Mi");
    assert!(units::is_fargate_size(1024, 2048));
    let env = ps.containers[0].env.as_ref().unwrap();
    let secret = |name: &str| {
        let r = env
            .iter()
            .find(|e| e.name == name)
            .unwrap()
            .value_from
            .as_ref()
            .unwrap()
            .secret_key_ref
            .clone()
            .unwrap();
        (r.name, r.key)
    };
    assert_eq!(
        secret("DB_PASSWORD"),
        ("prod-orders-db".into(), "password".into())
    );
    assert_eq!(
        secret("STRIPE_KEY"),
        ("stripe-api-key".into(), "value".into())
    );
    assert_eq!(
        secret("FEATURE_FLAGS"),
        ("orders-prod".into(), "feature-flags".into())
    );
    assert_eq!(secret("SENTRY_DSN"), ("sentry-dsn".into(), "value".into()));
    assert_eq!(ps.service_account_name.as_deref(), Some("orders-api-task"));
    assert_eq!(
        ps.node_selector.as_ref().unwrap()["kubernetes.io/arch"],
        "arm64"
    );
    assert!(compatibilities(&spec).contains(&kubecs::api::taskdef::Compatibility::Fargate));
}

#[test]
fn describe_output_keeps_its_revision() {
    let text = corpus()
        .into_iter()
        .find(|(f, _)| f == "describe-output-redis.json")
        .unwrap()
        .1;
    let parsed = input::parse_task_definition(&text).unwrap();
    assert_eq!(parsed.revision, Some(12));
    assert_eq!(parsed.spec.family.as_deref(), Some("redis-cache"));
}

/// Golden files: the pod every corpus task definition renders to, as YAML, in
/// `operator/tests/golden/`. Any change of a rendered pod fails here until it is reviewed and
/// the files are written again with `KUBECS_UPDATE_GOLDEN=1 cargo test --test render_corpus`.
#[test]
fn rendered_pods_match_their_golden_files() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let update = std::env::var_os("KUBECS_UPDATE_GOLDEN").is_some();
    if update {
        std::fs::create_dir_all(&dir).unwrap();
    }
    let mut differ = Vec::new();
    for (file, text) in corpus() {
        let parsed = input::parse_task_definition(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
        let family = parsed.spec.family.clone().unwrap_or_default();
        let identity = PodIdentity {
            name: Some(names::dns_label(&family)),
            namespace: Some("default".into()),
            cluster: Some("default".into()),
            family: Some(family),
            revision: Some(parsed.revision.unwrap_or(1)),
            ..Default::default()
        };
        let rendered = taskdef::render_pod(&parsed.spec, &identity, &RenderOptions::default())
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        let yaml = serde_yaml::to_string(&rendered.pod).unwrap();
        let golden = dir.join(file.replace(".json", ".yaml"));
        if update {
            std::fs::write(&golden, &yaml).unwrap();
            continue;
        }
        match std::fs::read_to_string(&golden) {
            Ok(want) if want == yaml => {}
            Ok(want) => {
                let line = want
                    .lines()
                    .zip(yaml.lines())
                    .position(|(a, b)| a != b)
                    .unwrap_or(want.lines().count().min(yaml.lines().count()));
                differ.push(format!(
                    "{file}: differs from {} at line {}: golden {:?}, now {:?}",
                    golden.display(),
                    line + 1,
                    want.lines().nth(line).unwrap_or("<end>"),
                    yaml.lines().nth(line).unwrap_or("<end>")
                ));
            }
            Err(e) => differ.push(format!("{file}: {}: {e}", golden.display())),
        }
    }
    assert!(
        differ.is_empty(),
        "rendered pods changed (review, then KUBECS_UPDATE_GOLDEN=1 cargo test --test render_corpus):\n{}",
        differ.join("\n")
    );
}
