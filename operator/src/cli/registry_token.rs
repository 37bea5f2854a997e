//! `kubecs registry-token`: a registry token signed with the registry's key, for
//! `docker login -u AWS -p <token>` where no Kubernetes identity is at hand.

use std::path::PathBuf;

use super::Fatal;
use crate::registry as oci;

#[derive(clap::Args)]
pub struct Args {
    /// The registry's token key file (as given to `kubecs registry`); created if missing.
    #[arg(long, env = "KUBECS_REGISTRY_TOKEN_KEY_FILE")]
    token_key_file: PathBuf,
    /// The principal's username.
    #[arg(long)]
    user: String,
    /// The principal's groups (repeatable).
    #[arg(long = "group")]
    groups: Vec<String>,
}

pub fn run(a: Args) -> Result<(), Fatal> {
    let signer = oci::TokenSigner::load_or_create(&a.token_key_file)?;
    let principal = oci::Principal {
        username: a.user,
        groups: a.groups,
    };
    println!("{}", signer.issue(&principal, std::time::SystemTime::now()));
    Ok(())
}
