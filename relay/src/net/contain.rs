//! Panic containment for a media shard: every datagram, command and timer turn runs inside
//! [`contained`]. A panic (a bug, never an expected outcome) drops the peer that was being handled,
//! is counted (`tolk_shard_panics_total`) and logged; the shard and its other peers go on.

use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};

use tracing::error;

use crate::ids::SessionId;
use crate::net::core::ShardCore;

/// Run `f` on the core; after a panic, [`ShardCore::recover`] drops the peer it was handling (or
/// `session`'s) and the panic is counted. None when `f` panicked. A panic while recovering is
/// not contained: the shard thread ends and the supervisor (healthz, the binary) sees it.
pub fn contained<R>(
    core: &mut ShardCore,
    session: Option<&SessionId>,
    f: impl FnOnce(&mut ShardCore) -> R,
) -> Option<R> {
    core.clear_handling();
    match catch_unwind(AssertUnwindSafe(|| f(core))) {
        Ok(r) => Some(r),
        Err(panic) => {
            let what = panic_text(panic.as_ref());
            match catch_unwind(AssertUnwindSafe(|| core.recover(session))) {
                Ok(dropped) => {
                    error!(panic = %what, dropped = ?dropped.map(|s| s.to_string()), "media shard contained a panic");
                    None
                }
                Err(again) => {
                    error!(panic = %what, "media shard could not recover from a panic");
                    resume_unwind(again)
                }
            }
        }
    }
}

/// The message of a panic payload.
fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}
