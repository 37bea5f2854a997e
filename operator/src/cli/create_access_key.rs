//! `kubecs create-access-key`: an access key for the ECS and ECR APIs that stands for a
//! ServiceAccount or a user, stored as a Secret where `kubecs api` reads it. Prints what
//! `aws iam create-access-key` prints.

use kube::api::{Api, PostParams};
use serde_json::json;

use super::Fatal;
use crate::aws::keys;
use crate::registry::Principal;

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("who").required(true).args(["service_account", "user"])))]
pub struct Args {
    /// The ServiceAccount the key stands for, `NAMESPACE/NAME`; its namespace is the account.
    #[arg(long)]
    service_account: Option<String>,
    /// A user the key stands for (as the API server authenticates users).
    #[arg(long)]
    user: Option<String>,
    /// The user's groups (repeatable).
    #[arg(long = "group", requires = "user")]
    groups: Vec<String>,
    /// The user's account: the namespace its calls act in.
    #[arg(long, requires = "user", default_value = "default")]
    account: String,
    /// Where `kubecs api` reads access keys.
    #[arg(long, default_value = "kubecs-system")]
    key_namespace: String,
}

pub async fn run(a: Args) -> Result<(), Fatal> {
    let (principal, account) = match (&a.service_account, &a.user) {
        (Some(sa), _) => {
            let (ns, name) = sa
                .split_once('/')
                .filter(|(n, s)| !n.is_empty() && !s.is_empty())
                .ok_or("--service-account takes NAMESPACE/NAME")?;
            keys::service_account(ns, name)
        }
        (None, Some(user)) => {
            let mut groups = a.groups.clone();
            if !groups.iter().any(|g| g == "system:authenticated") {
                groups.push("system:authenticated".into());
            }
            (
                Principal {
                    username: user.clone(),
                    groups,
                },
                a.account.clone(),
            )
        }
        (None, None) => unreachable!("clap requires one"),
    };
    let key = keys::generate(principal, account);
    let client = kube::Client::try_default().await?;
    let secrets: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(client, &a.key_namespace);
    secrets
        .create(
            &PostParams::default(),
            &keys::to_secret(&key, &a.key_namespace),
        )
        .await?;
    let out = json!({
        "AccessKey": {
            "UserName": key.principal.username,
            "AccessKeyId": key.id,
            "Status": "Active",
            "SecretAccessKey": key.secret,
            "CreateDate": k8s_openapi::jiff::Timestamp::now().to_string(),
        }
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}
