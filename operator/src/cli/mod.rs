//! The `kubecs` command line: one module per subcommand, each with its `#[derive(Args)]`
//! struct and its `run`. Shared wiring (watches, the admin server, fatal errors) is in
//! [`wiring`].

mod api;
mod crdgen;
mod create_access_key;
mod login_password;
mod operator;
mod registry;
mod registry_token;
mod render;
pub mod wiring;

use clap::{Parser, Subcommand};

pub use wiring::Fatal;

#[derive(Parser)]
#[command(
    name = "kubecs",
    version,
    about = "Amazon ECS and ECR semantics on any Kubernetes cluster"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the controllers (EcsCluster, TaskDefinition, Service, Task).
    Operator(operator::Args),
    /// Print every kubecs CRD as YAML (what crds/ holds).
    Crdgen,
    /// Print the Pod an ECS task definition becomes. Reads the JSON of
    /// `aws ecs register-task-definition --cli-input-json`, the output of
    /// `aws ecs describe-task-definition`, or a TaskDefinition YAML. An invalid task definition
    /// is refused with ECS's messages (exit status 1); fields Kubernetes cannot honour are
    /// listed on stderr.
    Render(render::Args),
    /// Run the ECR-compatible OCI registry (OCI Distribution Specification v1.1). Clients log in
    /// with `docker login -u AWS -p <token>`; see `registry-token`.
    Registry(Box<registry::Args>),
    /// Print a registry password for `docker login -u AWS --password-stdin` (like
    /// `aws ecr get-login-password`): the current kubeconfig user's bearer token is exchanged
    /// at the registry for a registry token of that identity, valid 12 hours.
    LoginPassword(login_password::Args),
    /// Serve the ECS and ECR APIs (what `aws ecs ...` and `aws ecr ...` call with
    /// `--endpoint-url`): SigV4-signed calls, each acting as its access key's identity.
    Api(api::Args),
    /// Create an access key for the ECS and ECR APIs that stands for a ServiceAccount or a
    /// user (like `aws iam create-access-key`); stored as a Secret `kubecs api` reads.
    CreateAccessKey(create_access_key::Args),
    /// Print a registry token (valid 12 hours) for `docker login -u AWS -p <token>`.
    RegistryToken(registry_token::Args),
}

impl Cli {
    pub async fn run(self) -> Result<(), Fatal> {
        match self.command {
            Command::Operator(a) => operator::run(a).await,
            Command::Crdgen => crdgen::run(),
            Command::Render(a) => render::run(a),
            Command::Registry(a) => registry::run(*a).await,
            Command::LoginPassword(a) => login_password::run(a).await,
            Command::RegistryToken(a) => registry_token::run(a),
            Command::Api(a) => api::run(a).await,
            Command::CreateAccessKey(a) => create_access_key::run(a).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        // clap's own checks: conflicting/required arguments name existing ones, no duplicates.
        Cli::command().debug_assert();
    }

    #[test]
    fn registry_flags_parse_into_its_config() {
        let cli = Cli::try_parse_from([
            "kubecs",
            "registry",
            "--storage",
            "s3://bucket/prefix",
            "--s3-endpoint",
            "http://127.0.0.1:9000",
            "--s3-allow-http",
            "--token-key-file",
            "/tmp/key",
            "--create-on-push",
        ])
        .unwrap();
        let Command::Registry(a) = cli.command else {
            panic!("not the registry command")
        };
        let config = crate::registry::RegistryConfig::from(&*a);
        assert!(config.create_on_push);
        match a.store().unwrap() {
            registry::StoreChoice::S3(s3) => {
                assert_eq!(
                    (s3.bucket.as_str(), s3.prefix.as_str()),
                    ("bucket", "prefix")
                );
                assert!(s3.allow_http && s3.conditional_writes);
            }
            registry::StoreChoice::Dir(_) => panic!("expected S3"),
        }
    }

    #[test]
    fn registry_refuses_a_gc_grace_of_zero() {
        let args = |grace: &'static str| {
            let dir = ["--storage-dir", "/tmp/s", "--token-key-file", "/tmp/k"];
            let flags = ["kubecs", "registry"].into_iter().chain(dir);
            Cli::try_parse_from(flags.chain(["--gc-grace-seconds", grace]))
        };
        let err = args("0").err().expect("a grace of 0 is refused");
        assert_eq!(err.kind(), clap::error::ErrorKind::ValueValidation);
        assert!(err.to_string().contains("use 1 or more"), "{err}");
        assert!(args("1").is_ok());
    }

    #[test]
    fn registry_fsck_needs_only_a_store() {
        let cli = Cli::try_parse_from(["kubecs", "registry", "fsck", "--storage-dir", "/srv/r"])
            .expect("no token key needed to check a store");
        assert!(matches!(cli.command, Command::Registry(_)));
        let err = Cli::try_parse_from(["kubecs", "registry", "fsck"])
            .err()
            .expect("a store is needed");
        assert_eq!(err.kind(), clap::error::ErrorKind::MissingRequiredArgument);
    }

    #[test]
    fn registry_needs_one_store() {
        let err = Cli::try_parse_from(["kubecs", "registry", "--token-key-file", "/tmp/k"])
            .err()
            .expect("no store is an error");
        assert_eq!(err.kind(), clap::error::ErrorKind::MissingRequiredArgument);
    }
}
