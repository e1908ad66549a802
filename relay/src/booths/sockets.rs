//! One open booth socket per interpreter: a booth opened in a second window (or a second device)
//! takes over, and the socket it replaces is told to close. Two windows never share a booth's
//! pushes or act for it together.

use std::sync::atomic::{AtomicU64, Ordering};

use dashmap::DashMap;
use tokio::sync::oneshot;

use crate::ids::InterpreterId;

/// The open booth sockets of a node, one per interpreter.
#[derive(Default)]
pub(crate) struct OpenSockets {
    open: DashMap<InterpreterId, (u64, oneshot::Sender<()>)>,
    next: AtomicU64,
}

/// A socket's place: [`Self::replaced`] fires when another socket of the same interpreter opens;
/// dropping it frees the place (unless another socket already took it).
pub(crate) struct SocketPlace<'a> {
    sockets: &'a OpenSockets,
    interpreter: InterpreterId,
    id: u64,
    /// Fires (or errs) when a newer socket of the same interpreter took the place.
    pub(crate) replaced: oneshot::Receiver<()>,
}

impl OpenSockets {
    /// Take the interpreter's place; an older socket there is told to close.
    pub(crate) fn open(&self, interpreter: InterpreterId) -> SocketPlace<'_> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (tell, replaced) = oneshot::channel();
        if let Some((_, older)) = self.open.insert(interpreter, (id, tell)) {
            let _ = older.send(());
        }
        SocketPlace { sockets: self, interpreter, id, replaced }
    }

    /// Sockets open now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.open.len()
    }
}

impl Drop for SocketPlace<'_> {
    fn drop(&mut self) {
        self.sockets.open.remove_if(&self.interpreter, |_, (id, _)| *id == self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_socket_replaces_the_first_and_only_the_newest_frees_the_place() {
        let sockets = OpenSockets::default();
        let ana = InterpreterId(1);
        let mut first = sockets.open(ana);
        assert!(first.replaced.try_recv().is_err(), "alone, nothing replaces it");
        let mut second = sockets.open(ana);
        assert_eq!(first.replaced.try_recv(), Ok(()), "the older socket is told");
        let _ben = sockets.open(InterpreterId(2));
        assert!(second.replaced.try_recv().is_err(), "another interpreter replaces nobody");
        drop(first);
        assert_eq!(sockets.len(), 2, "the replaced socket leaving does not free the newer one's place");
        drop(second);
        assert_eq!(sockets.len(), 1);
    }
}
