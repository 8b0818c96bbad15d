//! Calling a third-party parser on a file from a stranger. Some panic on damaged input (the
//! `parquet` crate on a dictionary-encoded page without its dictionary, found by `wgtune-fuzz`):
//! [`catch_panic`] turns such a panic into an `Err` for the caller to name the file with, and
//! keeps its message off the terminal, where it would read as wgtune crashing.

use std::any::Any;
use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Once;

thread_local! {
    /// Whether this thread is inside [`catch_panic`], whose panics are expected.
    static CATCHING: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f`, returning its panic's message as the error. The process's panic hook stays as it
/// was for every other panic.
pub fn catch_panic<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    static QUIET_HOOK: Once = Once::new();
    QUIET_HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !CATCHING.get() {
                previous(info);
            }
        }));
    });
    let was = CATCHING.replace(true);
    let outcome = catch_unwind(AssertUnwindSafe(f));
    CATCHING.set(was);
    outcome.map_err(|payload| message_of(payload.as_ref()))
}

fn message_of(payload: &(dyn Any + Send)) -> String {
    payload.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| payload.downcast_ref::<String>().cloned()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_its_message_and_a_value_passes_through() {
        assert_eq!(catch_panic(|| 7), Ok(7));
        assert_eq!(catch_panic(|| -> u8 { panic!("a damaged page") }), Err("a damaged page".to_string()));
        assert!(!CATCHING.get());
    }
}
