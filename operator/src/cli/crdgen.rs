//! `kubecs crdgen`: the CRDs as YAML, generated from the Rust types (what crds/ holds).

use super::Fatal;

pub fn run() -> Result<(), Fatal> {
    print!("{}", crate::api::crds_yaml());
    Ok(())
}
