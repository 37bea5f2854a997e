//! `kubecs api`: the ECS and ECR wire APIs (what `aws ecs ...` and `aws ecr ...` call), served
//! until SIGINT or SIGTERM. It needs a kubeconfig (or in-cluster credentials) allowed to read
//! access-key Secrets in `--key-namespace` and to impersonate; every call runs as its caller.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tracing::info;

use super::Fatal;
use super::wiring::shutdown_signal;
use crate::aws::caller::Impersonator;
use crate::aws::keys::KeyStore;
use crate::aws::registry::RegistryLink;
use crate::aws::server::{ApiState, router};
use crate::registry as oci;

#[derive(clap::Args)]
pub struct Args {
    /// Address to listen on.
    #[arg(long, env = "KUBECS_API_LISTEN", default_value = "127.0.0.1:4566")]
    listen: SocketAddr,
    /// The namespace whose `kubecs.io/access-key` Secrets hold the access keys.
    #[arg(
        long,
        env = "KUBECS_API_KEY_NAMESPACE",
        default_value = "kubecs-system"
    )]
    key_namespace: String,
    /// URL of the registry ECR image operations go to, e.g. `http://127.0.0.1:5000`.
    #[arg(
        long,
        env = "KUBECS_API_REGISTRY_URL",
        requires = "registry_token_key_file"
    )]
    registry_url: Option<String>,
    /// `host[:port]` of repository URIs and of GetAuthorizationToken's proxyEndpoint (default:
    /// the registry URL's host).
    #[arg(long, env = "KUBECS_API_REGISTRY_HOST")]
    registry_host: Option<String>,
    /// The registry's token key file: GetAuthorizationToken signs the caller's registry token.
    #[arg(long, env = "KUBECS_REGISTRY_TOKEN_KEY_FILE")]
    registry_token_key_file: Option<PathBuf>,
    /// Print the operations served (JSON: {"ecs": [...], "ecr": [...]}) and exit.
    #[arg(long)]
    print_operations: bool,
}

pub async fn run(a: Args) -> Result<(), Fatal> {
    if a.print_operations {
        let (ecs, ecr) = crate::aws::served_operations();
        println!("{}", serde_json::json!({ "ecs": ecs, "ecr": ecr }));
        return Ok(());
    }
    let config = kube::Config::infer().await?;
    let client = kube::Client::try_from(config.clone())?;
    let registry = match (&a.registry_url, &a.registry_token_key_file) {
        (Some(url), Some(key)) => {
            let url = url.trim_end_matches('/').to_string();
            let public_host = a.registry_host.clone().unwrap_or_else(|| {
                url.split_once("://")
                    .map_or(url.as_str(), |(_, h)| h)
                    .to_string()
            });
            Some(RegistryLink {
                url,
                public_host,
                signer: oci::TokenSigner::load_or_create(key)?,
            })
        }
        _ => None,
    };
    let state = Arc::new(ApiState {
        keys: KeyStore::new(client, &a.key_namespace),
        impersonator: Impersonator::new(config),
        registry,
    });
    let listener = tokio::net::TcpListener::bind(a.listen).await?;
    info!(
        "kubecs api (ECS, ECR) listening on http://{}",
        listener.local_addr()?
    );
    oci::serve::serve(
        listener,
        router(state),
        oci::serve::ServeLimits {
            header_read_timeout: Duration::from_secs(30),
            body_idle_timeout: Duration::from_secs(60),
            max_connections: 512,
        },
        shutdown_signal(),
    )
    .await?;
    Ok(())
}
