//! `kubecs login-password`: `aws ecr get-login-password` for kubecs. The kubeconfig user's
//! bearer token is exchanged at the registry for a registry token of that identity.

use super::Fatal;

#[derive(clap::Args)]
pub struct Args {
    /// The registry: `host[:port]` (https; http for loopback) or a URL.
    #[arg(long, env = "KUBECS_REGISTRY")]
    registry: String,
    /// The kubeconfig context (default: the current one).
    #[arg(long)]
    context: Option<String>,
}

pub async fn run(a: Args) -> Result<(), Fatal> {
    let result = async {
        let bearer = crate::login::kubeconfig_token(a.context).await?;
        crate::login::fetch_registry_token(&a.registry, &bearer).await
    };
    match result.await {
        Ok(token) => {
            println!("{token}");
            Ok(())
        }
        Err(e) => {
            // The message alone, as the aws CLI prints its errors: it is meant for a terminal.
            eprintln!("kubecs login-password: {e}");
            std::process::exit(1);
        }
    }
}
