//! Wake-ups for agents' long-polls, per host: a change on host A wakes
//! only A's agent. Each host has a generation (the larger of its own and
//! the all-hosts one); an agent's sync waits while the generation it last
//! saw is still current.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::watch;

/// Per-host generations behind one change signal.
pub struct Wakeups {
    tick: watch::Sender<u64>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Last generation that concerned every host.
    all: u64,
    /// Last generation that concerned one host.
    hosts: HashMap<u64, u64>,
}

impl Default for Wakeups {
    fn default() -> Self {
        Wakeups::new()
    }
}

impl Wakeups {
    /// Generation 1 everywhere: an agent starting from 0 gets an answer at once.
    pub fn new() -> Wakeups {
        let (tick, _) = watch::channel(1);
        Wakeups {
            tick,
            state: Mutex::new(State {
                all: 1,
                hosts: HashMap::new(),
            }),
        }
    }

    fn advance(&self, f: impl FnOnce(&mut State, u64)) {
        let mut next = 0;
        self.tick.send_modify(|g| {
            *g += 1;
            next = *g;
        });
        if let Ok(mut s) = self.state.lock() {
            f(&mut s, next);
        }
        // Waiters re-check after the state is written.
        self.tick.send_modify(|_| {});
    }

    /// Something changed for these hosts.
    pub fn hosts(&self, hosts: impl IntoIterator<Item = u64>) {
        let hosts: Vec<u64> = hosts.into_iter().filter(|h| *h != 0).collect();
        if hosts.is_empty() {
            return;
        }
        self.advance(|s, g| {
            for h in hosts {
                s.hosts.insert(h, g);
            }
        });
    }

    /// Something changed for every host.
    pub fn all(&self) {
        self.advance(|s, g| s.all = g);
    }

    /// Make every waiter look again without moving any generation (what
    /// it waits for beside its generation changed: see [`Wakeups::wait_or`]).
    pub fn poke(&self) {
        self.tick.send_modify(|_| {});
    }

    /// The generation `host` is at.
    pub fn of(&self, host: u64) -> u64 {
        self.state
            .lock()
            .map(|s| s.all.max(s.hosts.get(&host).copied().unwrap_or(0)))
            .unwrap_or(0)
    }

    /// Wait up to `limit` while `host` is still at generation `seen`;
    /// the generation it is at then.
    pub async fn wait(&self, host: u64, seen: u64, limit: Duration) -> u64 {
        self.wait_or(host, seen, limit, || false).await
    }

    /// [`Wakeups::wait`], also ending as soon as `done` holds (checked at
    /// every change and [`Wakeups::poke`]).
    pub async fn wait_or(
        &self,
        host: u64,
        seen: u64,
        limit: Duration,
        done: impl Fn() -> bool,
    ) -> u64 {
        let mut rx = self.tick.subscribe();
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            rx.borrow_and_update();
            let now = self.of(host);
            if now != seen || limit.is_zero() || done() {
                return now;
            }
            if tokio::time::timeout_at(deadline, rx.changed())
                .await
                .is_err()
            {
                return self.of(host);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_change_moves_only_that_host() {
        let w = Wakeups::new();
        assert_eq!((w.of(1), w.of(2)), (1, 1));
        w.hosts([1]);
        assert!(w.of(1) > 1);
        assert_eq!(w.of(2), 1, "host 2 is not woken by host 1's change");
        let g1 = w.of(1);
        w.all();
        assert!(w.of(2) > 1 && w.of(1) > g1);
        w.hosts([0]);
        assert_eq!(w.of(0), w.of(2), "host 0 (unplaced) wakes nobody");
    }

    #[tokio::test]
    async fn wait_returns_on_own_change_not_on_others() {
        let w = std::sync::Arc::new(Wakeups::new());
        let g = w.of(7);
        let w2 = w.clone();
        let t = tokio::spawn(async move { w2.wait(7, g, Duration::from_secs(5)).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        w.hosts([8]);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!t.is_finished(), "another host's change does not answer");
        w.hosts([7]);
        let got = tokio::time::timeout(Duration::from_secs(2), t)
            .await
            .unwrap()
            .unwrap();
        assert_ne!(got, g);
        // Timeout: the same generation comes back.
        let g = w.of(9);
        assert_eq!(w.wait(9, g, Duration::from_millis(30)).await, g);
    }
}
