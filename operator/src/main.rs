//! The `kubecs` binary: parses the command line and runs the subcommand (`kubecs::cli`).

use clap::Parser;

#[tokio::main]
async fn main() -> Result<(), kubecs::cli::Fatal> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                // Not `kube=warn`: targets match by prefix, and that would silence `kubecs` too.
                .unwrap_or_else(|_| "info,kube_client=warn,kube_runtime=warn".into()),
        )
        .init();
    kubecs::cli::Cli::parse().run().await
}
