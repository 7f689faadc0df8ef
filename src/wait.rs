//! Waiting with a deadline: [`until`] asks `poll` again and again, `every` apart,
//! until it has an answer, fails, or `timeout` has passed. Every wait for a daemon
//! (the controller, the nodes, slurmdbd, a munge key) is one call to it.
//!
//! A leaf: it knows nothing of engines or Slurm. Time is tokio's, so tests run it
//! with paused time.

use std::convert::Infallible;
use std::time::Duration;

use tokio::time::Instant;

/// One look at what is awaited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Poll<T, W = ()> {
    /// It is there: the wait ends with `T`.
    Ready(T),
    /// Not yet; `W` is what was seen, which a timeout reports (the nodes' states...).
    NotYet(W),
}

/// The deadline passed: how long was waited, and what the last look saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timeout<W = ()> {
    pub waited: Duration,
    pub last: W,
}

/// Why a wait ended without an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Waited<W, E> {
    TimedOut(Timeout<W>),
    /// `poll` failed: the wait ends at once with its error.
    Failed(E),
}

impl<W, E> Waited<W, E> {
    /// One error for the caller: the poll's own error converted, a timeout made into
    /// one by `timed_out`.
    pub fn or_timeout<X: From<E>>(self, timed_out: impl FnOnce(Timeout<W>) -> X) -> X {
        match self {
            Waited::TimedOut(t) => timed_out(t),
            Waited::Failed(e) => e.into(),
        }
    }
}

impl<W> Waited<W, Infallible> {
    /// The timeout of a wait whose poll cannot fail.
    pub fn timeout(self) -> Timeout<W> {
        match self {
            Waited::TimedOut(t) => t,
            Waited::Failed(never) => match never {},
        }
    }
}

/// Polls until `poll` is [`Poll::Ready`] or fails: it is asked at once, then after
/// each `every`; once more than `timeout` has passed since the start, a look that is
/// [`Poll::NotYet`] ends the wait with [`Waited::TimedOut`] and what it saw.
pub async fn until<T, W, E>(
    timeout: Duration,
    every: Duration,
    mut poll: impl AsyncFnMut() -> Result<Poll<T, W>, E>,
) -> Result<T, Waited<W, E>> {
    let start = Instant::now();
    loop {
        match poll().await.map_err(Waited::Failed)? {
            Poll::Ready(found) => return Ok(found),
            Poll::NotYet(last) if start.elapsed() > timeout => {
                return Err(Waited::TimedOut(Timeout { waited: start.elapsed(), last }));
            }
            Poll::NotYet(_) => {}
        }
        tokio::time::sleep(every).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVERY: Duration = Duration::from_millis(100);

    #[tokio::test(start_paused = true)]
    async fn an_answer_ends_the_wait_at_once() {
        let start = Instant::now();
        let mut looks = 0;
        let found = until(Duration::from_secs(5), EVERY, async || {
            looks += 1;
            Ok::<_, Infallible>(if looks == 3 { Poll::Ready("up") } else { Poll::NotYet(()) })
        })
        .await;
        assert_eq!(found, Ok("up"));
        assert_eq!(looks, 3);
        assert_eq!(start.elapsed(), 2 * EVERY);
    }

    #[tokio::test(start_paused = true)]
    async fn past_the_deadline_the_last_look_is_reported() {
        let mut looks = 0;
        let waited = until(Duration::from_secs(1), EVERY, async || {
            looks += 1;
            Ok::<Poll<(), u32>, Infallible>(Poll::NotYet(looks))
        })
        .await
        .unwrap_err()
        .timeout();
        // Asked at 0, 0.1, ..., 1.1 s: the first look after a full second is the last.
        assert_eq!(waited, Timeout { waited: Duration::from_millis(1100), last: 12 });
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_poll_ends_the_wait_with_its_error() {
        let mut looks = 0;
        let got = until(Duration::from_secs(60), EVERY, async || {
            looks += 1;
            if looks == 2 { Err("refused") } else { Ok(Poll::<(), ()>::NotYet(())) }
        })
        .await;
        assert_eq!(got, Err(Waited::Failed("refused")));
        assert_eq!(looks, 2);
        #[derive(Debug, PartialEq)]
        struct Mine(&'static str);
        impl From<&'static str> for Mine {
            fn from(e: &'static str) -> Mine {
                Mine(e)
            }
        }
        assert_eq!(got.unwrap_err().or_timeout(|_| Mine("timeout")), Mine("refused"));
    }

    #[tokio::test(start_paused = true)]
    async fn the_poll_may_keep_state_and_call_back_between_looks() {
        // As wait_for_nodes does: a progress callback borrowed mutably across looks.
        let mut seen = Vec::new();
        let mut on_poll = |ready: usize| seen.push(ready);
        let mut ready = 0;
        let all = until(Duration::from_secs(10), EVERY, async || {
            tokio::task::yield_now().await;
            ready += 1;
            on_poll(ready);
            Ok::<_, Infallible>(if ready == 4 { Poll::Ready(ready) } else { Poll::NotYet(()) })
        })
        .await;
        assert_eq!(all, Ok(4));
        assert_eq!(seen, [1, 2, 3, 4]);
    }
}
