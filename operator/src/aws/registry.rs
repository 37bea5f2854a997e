//! How ECR calls reach the registry: its URL, the host image URIs name, and the key that
//! signs registry tokens, so `GetAuthorizationToken` returns the caller's own token and image
//! operations go to the registry *as the caller* (its repository policies decide).

use std::time::SystemTime;

use crate::registry::{Principal, TokenSigner};

#[derive(Clone, Debug)]
pub struct RegistryLink {
    /// Where the API reaches the registry, e.g. `http://127.0.0.1:5000`.
    pub url: String,
    /// `host[:port]` of repository URIs (what docker push and pull use).
    pub public_host: String,
    pub signer: TokenSigner,
}

impl RegistryLink {
    /// A registry token of `p`, valid 12 hours from `now`.
    pub fn token(&self, p: &Principal, now: SystemTime) -> String {
        self.signer.issue(p, now)
    }
}
