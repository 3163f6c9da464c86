//! Runs a session's work until the server starts closing, without looking
//! at the shutdown phase on every wakeup.
//!
//! A relaying session is woken twice per transaction. `tokio::select!` over
//! the relay and the phase watch polled both every time: a random branch
//! order, a read lock on the watch's value and the lock of its `Notify`, per
//! wakeup, for a phase that changes once in the process' life. Here the
//! phase is polled with a waker of its own that only raises a flag: it is
//! looked at again only after that flag was raised.

use super::shared::{reached, Phase};
use futures_util::task::AtomicWaker;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use tokio::sync::watch;

/// The waker the phase watch is polled with: raises `changed`, then wakes
/// the session's task.
struct PhaseWaker {
    changed: AtomicBool,
    task: AtomicWaker,
}

impl Wake for PhaseWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.changed.store(true, Ordering::Release);
        self.task.wake();
    }
}

/// Runs `work` to its end (`Some`), or until the phase reaches
/// [`Phase::Closing`] (`None`, and `work` is dropped unfinished).
///
/// `work` is pinned by the caller (`pin!` or `Box::pin`), so this future
/// holds a reference to it, not a second copy of a large state machine.
pub fn unless_closing<F: Future + Unpin>(
    phase: &mut watch::Receiver<Phase>,
    work: F,
) -> UnlessClosing<'_, F> {
    let signal = Arc::new(PhaseWaker {
        // Polled once at the start: the phase may already be Closing.
        changed: AtomicBool::new(true),
        task: AtomicWaker::new(),
    });
    UnlessClosing {
        work,
        closing: Box::pin(reached(phase, Phase::Closing)),
        phase_waker: Waker::from(signal.clone()),
        signal,
    }
}

/// The future [`unless_closing`] returns.
pub struct UnlessClosing<'a, F> {
    work: F,
    closing: Pin<Box<dyn Future<Output = ()> + Send + 'a>>,
    signal: Arc<PhaseWaker>,
    phase_waker: Waker,
}

impl<F: Future + Unpin> Future for UnlessClosing<'_, F> {
    type Output = Option<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        // Registered before the flag is read: a phase change after this
        // line wakes the task again.
        this.signal.task.register(cx.waker());
        if this.signal.changed.swap(false, Ordering::Acquire) {
            let mut phase_cx = Context::from_waker(&this.phase_waker);
            if this.closing.as_mut().poll(&mut phase_cx).is_ready() {
                return Poll::Ready(None);
            }
        }
        Pin::new(&mut this.work).poll(cx).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn the_work_finishes_while_the_phase_stays_open() {
        let (_tx, mut rx) = watch::channel(Phase::Running);
        let out = unless_closing(&mut rx, Box::pin(async { 7 })).await;
        assert_eq!(out, Some(7));
    }

    #[tokio::test]
    async fn an_already_closing_phase_stops_the_work_before_it_runs() {
        let (_tx, mut rx) = watch::channel(Phase::Closing);
        let ran = std::sync::atomic::AtomicBool::new(false);
        let out = unless_closing(
            &mut rx,
            Box::pin(async {
                ran.store(true, Ordering::Relaxed);
            }),
        )
        .await;
        assert_eq!(out, None);
        assert!(!ran.load(Ordering::Relaxed));
    }

    #[tokio::test]
    async fn closing_while_the_work_waits_ends_it() {
        let (tx, mut rx) = watch::channel(Phase::Running);
        let closer = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            // An earlier phase wakes the session but does not end it.
            let _ = tx.send(Phase::Draining);
            tokio::time::sleep(Duration::from_millis(20)).await;
            let _ = tx.send(Phase::Closing);
            tx
        });
        // Bounded: a phase change that never reached the session would
        // otherwise hang the test instead of failing it.
        let out = tokio::time::timeout(
            Duration::from_secs(10),
            unless_closing(&mut rx, std::future::pending::<()>()),
        )
        .await
        .expect("the session saw the phase change");
        assert_eq!(out, None);
        let _tx = closer.await;
    }

    #[tokio::test]
    async fn the_work_is_still_woken_by_its_own_events() {
        let (_tx, mut rx) = watch::channel(Phase::Running);
        let (send, recv) = tokio::sync::oneshot::channel::<u8>();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(10)).await;
            let _ = send.send(3);
        });
        let out = unless_closing(&mut rx, recv).await;
        assert_eq!(out, Some(Ok(3)));
    }
}
