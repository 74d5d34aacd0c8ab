//! Time as a dependency. Every service asks a [`Clock`] for the current instant (production
//! uses [`SystemClock`], tests a [`ManualClock`] they advance), and every background loop is
//! paced by a [`Pace`], which a test can ask for one round now and wait until that round has
//! finished — so a test of a 72-hour deadline advances the clock by 72 hours and runs the loop
//! once, in milliseconds, and a test that checks "nothing more happens" runs the loop and looks,
//! instead of sleeping and hoping the loop ran.
//!
//! This is the only module allowed to read the system clock (`clippy.toml`'s
//! `disallowed-methods`).

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{Notify, watch};

/// Where the current instant comes from.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current instant.
    fn now(&self) -> DateTime<Utc>;
}

/// A clock shared by the services of a process.
pub type SharedClock = Arc<dyn Clock>;

/// The system's clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // the one place the system clock is read
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// The system clock, shared.
pub fn system() -> SharedClock {
    Arc::new(SystemClock)
}

/// A clock that moves only when told: tests drive deadlines with it.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<DateTime<Utc>>,
}

impl ManualClock {
    /// A clock standing at `start`.
    pub fn at(start: DateTime<Utc>) -> Arc<Self> {
        Arc::new(Self { now: Mutex::new(start) })
    }

    /// A clock standing at the system's current instant (read once).
    pub fn starting_now() -> Arc<Self> {
        Self::at(SystemClock.now())
    }

    /// Moves the clock forward (or back, with a negative duration).
    pub fn advance(&self, by: chrono::Duration) {
        let mut now = self.now.lock().unwrap_or_else(|p| p.into_inner());
        *now += by;
    }

    /// Sets the clock to `to`.
    pub fn set(&self, to: DateTime<Utc>) {
        *self.now.lock().unwrap_or_else(|p| p.into_inner()) = to;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Paces a background loop: a round every `interval`, or at once when [`Pace::run_now`] asks.
///
/// The loop calls [`Pace::begin`] before a round and [`Pace::end`] after it, and waits with
/// [`Pace::wait`] between rounds. `run_now` returns once a round that *began after the call*
/// has ended, so what the round does is visible to the caller when it returns.
#[derive(Clone, Debug)]
pub struct Pace {
    interval: Duration,
    shared: Arc<PaceShared>,
}

#[derive(Debug)]
struct PaceShared {
    requested: AtomicU64,
    kick: Notify,
    done: watch::Sender<u64>,
}

/// A round in progress, from [`Pace::begin`].
#[must_use = "end the round with Pace::end"]
#[derive(Debug)]
pub struct Round(u64);

impl Pace {
    /// A round every `interval` (at least 1 ms).
    pub fn every(interval: Duration) -> Self {
        Self {
            interval: interval.max(Duration::from_millis(1)),
            shared: Arc::new(PaceShared {
                requested: AtomicU64::new(0),
                kick: Notify::new(),
                done: watch::Sender::new(0),
            }),
        }
    }

    /// Marks the start of a round.
    pub fn begin(&self) -> Round {
        Round(self.shared.requested.load(Ordering::SeqCst))
    }

    /// Marks the end of a round: callers of `run_now` waiting for it return.
    pub fn end(&self, round: Round) {
        self.shared.done.send_if_modified(|d| {
            let advanced = round.0 > *d;
            if advanced {
                *d = round.0;
            }
            advanced
        });
    }

    /// Waits until the next round is due: the interval has passed or a round was asked for.
    pub async fn wait(&self) {
        tokio::select! {
            _ = tokio::time::sleep(self.interval) => {}
            _ = self.shared.kick.notified() => {}
        }
    }

    /// Asks for a round now and waits until a round that began after this call has ended.
    /// It waits forever if the loop has stopped: callers bound it with a deadline.
    pub async fn run_now(&self) {
        let ticket = self.shared.requested.fetch_add(1, Ordering::SeqCst) + 1;
        let mut done = self.shared.done.subscribe();
        self.shared.kick.notify_one();
        let _ = done.wait_for(|d| *d >= ticket).await;
    }
}

/// Runs `round` every `pace` until `shutdown` resolves (the first round at once).
pub async fn run_paced<F, Fut>(pace: Pace, shutdown: impl std::future::Future<Output = ()>, mut round: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    tokio::pin!(shutdown);
    loop {
        let r = pace.begin();
        tokio::select! {
            _ = &mut shutdown => return,
            _ = round() => {}
        }
        pace.end(r);
        tokio::select! {
            _ = &mut shutdown => return,
            _ = pace.wait() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let start = DateTime::from_timestamp(1_415_232_000, 0).expect("2014-11-06");
        let c = ManualClock::at(start);
        assert_eq!(c.now(), start);
        c.advance(chrono::Duration::hours(72));
        assert_eq!(c.now(), start + chrono::Duration::hours(72));
        c.set(start);
        assert_eq!(c.now(), start);
    }

    #[tokio::test]
    async fn run_now_returns_after_a_round_that_began_after_it() {
        // An interval no test would wait for: only run_now drives the loop.
        let pace = Pace::every(Duration::from_secs(3600));
        let rounds = Arc::new(AtomicUsize::new(0));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let counted = rounds.clone();
        let task = tokio::spawn(run_paced(
            pace.clone(),
            async move {
                let _ = stopped.await;
            },
            move || {
                let counted = counted.clone();
                async move {
                    counted.fetch_add(1, Ordering::SeqCst);
                }
            },
        ));
        pace.run_now().await;
        let after_first = rounds.load(Ordering::SeqCst);
        assert!(after_first >= 1, "the first round ran");
        for i in 1..=3 {
            pace.run_now().await;
            assert!(rounds.load(Ordering::SeqCst) >= after_first + i, "run_now {i} waited for a new round");
        }
        let _ = stop.send(());
        task.await.expect("loop stops on shutdown");
    }
}
