//! ECR semantics as pure decisions: repository policies, tag mutability, lifecycle policies,
//! blob garbage collection, repository names, pull through cache rules, repository creation
//! templates and replication. No I/O: the registry and the Repository
//! controller gather the facts (images, blobs, identities), call these, and act on the answer.

pub mod creation_templates;
pub mod gc;
pub mod lifecycle;
pub mod mutability;
pub mod names;
pub mod policy;
pub mod pull_through;
pub mod replication;
mod wildcard;

pub use gc::{GcPlan, StoredBlob, plan_blob_deletions};
pub use lifecycle::{Expiration, ImageRecord};
pub use mutability::{
    check_tag_update, exclusion_filter_patterns, tag_invalid_message, tag_is_immutable,
};
pub use names::{repository_arn, repository_uri, validate_repository_name};
pub use policy::{Decision, KNOWN_ACTIONS, Principal};
