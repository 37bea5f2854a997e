//! `kubecs render`: the Pod a task definition becomes, without a cluster.

use std::path::{Path, PathBuf};

use clap::ValueEnum;

use super::Fatal;
use crate::taskdef;

#[derive(clap::Args)]
pub struct Args {
    /// The task definition file (`-` for stdin).
    file: PathBuf,
    /// The output format.
    #[arg(short, long, value_enum, default_value_t = Format::Yaml)]
    output: Format,
    /// The namespace of the pod.
    #[arg(short, long)]
    namespace: Option<String>,
    /// The EcsCluster the task runs in (the cluster label).
    #[arg(long)]
    cluster: Option<String>,
    /// Split task-level cpu/memory among the containers instead of using pod-level
    /// resources (for clusters without the PodLevelResources feature).
    #[arg(long)]
    no_pod_level_resources: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Yaml,
    Json,
}

pub fn run(a: Args) -> Result<(), Fatal> {
    let opts = taskdef::RenderOptions {
        pod_level_resources: !a.no_pod_level_resources,
        ..Default::default()
    };
    if let Err(messages) = render(&a.file, a.output, a.namespace, a.cluster, &opts) {
        for m in messages {
            eprintln!("{m}");
        }
        std::process::exit(1);
    }
    Ok(())
}

/// Prints the pod, or returns the messages to print before failing.
fn render(
    file: &Path,
    output: Format,
    namespace: Option<String>,
    cluster: Option<String>,
    opts: &taskdef::RenderOptions,
) -> Result<(), Vec<String>> {
    let text = if file.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin())
    } else {
        std::fs::read_to_string(file)
    }
    .map_err(|e| vec![format!("cannot read {}: {e}", file.display())])?;
    let input = taskdef::input::parse_task_definition(&text).map_err(|e| vec![e.to_string()])?;
    for w in &input.warnings {
        eprintln!("warning: {w}");
    }
    let family = input.spec.family.clone();
    let identity = taskdef::PodIdentity {
        name: family.as_deref().map(taskdef::names::dns_label),
        namespace,
        cluster,
        family,
        revision: input.revision,
        ..Default::default()
    };
    let rendered = taskdef::render_pod(&input.spec, &identity, opts).map_err(|e| e.0)?;
    for u in &rendered.unsupported {
        eprintln!("unsupported: {u}");
    }
    for c in &rendered.claims {
        eprintln!(
            "note: the pod mounts PersistentVolumeClaim '{}' (volume '{}'), which must exist",
            c.name, c.volume
        );
    }
    let out = match output {
        Format::Yaml => serde_yaml::to_string(&rendered.pod).map_err(|e| vec![e.to_string()])?,
        Format::Json => {
            serde_json::to_string_pretty(&rendered.pod).map_err(|e| vec![e.to_string()])? + "\n"
        }
    };
    print!("{out}");
    Ok(())
}
