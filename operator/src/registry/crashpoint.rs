//! Crash points: a test hook that kills the registry at one durable step of the filesystem
//! backend (`fs`), so a test can check what a crash there leaves (e2e/registry-crashpoints
//! kills a push before each of its steps in turn, then runs `kubecs registry fsck`).
//!
//! Every step whose order matters to durability (each fsync, rename, directory creation and
//! removal) calls [`step`] just before it is done. `kubecs registry` reads, at start:
//!
//! - `KUBECS_REGISTRY_CRASH_AT=N` (N >= 1): the Nth step, counted from the start of the
//!   process, aborts the process (`std::process::abort`: as a SIGKILL would, nothing after it
//!   runs; neither the step nor any destructor). It logs `crashpoint N: KIND PATH: aborting`
//!   to stderr first.
//! - `KUBECS_REGISTRY_CRASH_AT=count`: nothing aborts; every step is logged to stderr as
//!   `crashpoint N: KIND PATH`, so a driver learns how many steps a workload takes (and
//!   which is which).
//!
//! A test hook only: unset (as always in production), a step costs one relaxed atomic load.
//! The S3 backend has no steps (a request is its own unit of durability).

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// The environment variable read by [`init`].
pub const ENV: &str = "KUBECS_REGISTRY_CRASH_AT";

/// Whether a mode is set: the only thing an unset hook reads.
static ARMED: AtomicBool = AtomicBool::new(false);
/// The step that aborts; 0 in counting mode.
static TARGET: AtomicU64 = AtomicU64::new(0);
/// Steps taken so far.
static TAKEN: AtomicU64 = AtomicU64::new(0);

/// What a value of the variable asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Abort at this step (1-based).
    CrashAt(u64),
    /// Log every step, abort none.
    Count,
}

/// Parses the variable's value; an error names what is accepted.
pub fn parse(value: &str) -> Result<Mode, String> {
    match value.trim() {
        "count" => Ok(Mode::Count),
        v => match v.parse::<u64>() {
            Ok(n) if n >= 1 => Ok(Mode::CrashAt(n)),
            _ => Err(format!(
                "{ENV}={value}: expected a step number >= 1 or `count`"
            )),
        },
    }
}

/// Arms the hook from the environment (once, at the start of `kubecs registry`).
pub fn init() -> Result<(), String> {
    let Some(value) = std::env::var_os(ENV) else {
        return Ok(());
    };
    let mode = parse(&value.to_string_lossy())?;
    tracing::warn!(
        ?mode,
        "{ENV} is set: the registry will crash on purpose (a test hook)"
    );
    arm(mode);
    Ok(())
}

fn arm(mode: Mode) {
    TARGET.store(
        match mode {
            Mode::CrashAt(n) => n,
            Mode::Count => 0,
        },
        Ordering::SeqCst,
    );
    TAKEN.store(0, Ordering::SeqCst);
    ARMED.store(true, Ordering::SeqCst);
}

/// A durable step of kind `kind` (`fsync`, `fsync-dir`, `rename`, `mkdir`, `unlink`,
/// `rmdir`) on `path`, about to be taken.
#[inline]
pub fn step(kind: &'static str, path: &Path) {
    if ARMED.load(Ordering::Relaxed) {
        armed_step(kind, path);
    }
}

#[cold]
#[inline(never)]
fn armed_step(kind: &str, path: &Path) {
    let n = TAKEN.fetch_add(1, Ordering::SeqCst) + 1;
    let target = TARGET.load(Ordering::SeqCst);
    if target == 0 {
        eprintln!("crashpoint {n}: {kind} {}", path.display());
    } else if n == target {
        eprintln!("crashpoint {n}: {kind} {}: aborting", path.display());
        std::process::abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_parse() {
        assert_eq!(parse("count"), Ok(Mode::Count));
        assert_eq!(parse("7"), Ok(Mode::CrashAt(7)));
        assert_eq!(parse(" 12 "), Ok(Mode::CrashAt(12)));
        for bad in ["0", "", "-1", "seven"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
