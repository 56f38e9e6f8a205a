//! Partition leases. Threads are spread over [`PARTITIONS`] partitions (fixed by the thread
//! id, see the `thread_outbox.part` column); each is published by one messaging replica at a
//! time, the holder of its lease in `relay_leases`. Every replica renews its leases every
//! [`RENEW`] for [`TTL`], takes its fair share (partitions / live replicas) of those nobody
//! holds, and hands back what is above its share once nothing of them is in flight. A replica
//! that dies stops renewing: its partitions are taken over when their leases lapse.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::db::relay as db;

/// Number of partitions (the `% 64` of the `thread_outbox.part` column).
pub const PARTITIONS: u32 = 64;
/// How long a lease lasts without renewal: a dead replica's threads wait this long at most.
const TTL: Duration = Duration::from_secs(4);
/// How often leases are renewed and shares recomputed.
const RENEW: Duration = Duration::from_secs(1);
/// Safety margin: a replica stops publishing this long before its lease could lapse.
const MARGIN: Duration = Duration::from_millis(500);
/// Longest wait for in-flight publications of partitions being handed back.
const DRAIN: Duration = Duration::from_secs(5);

/// What this replica may publish; written by the lease keeper, read by the driver.
#[derive(Default)]
pub struct Leases {
    /// Bit `p` set: partition `p` is ours.
    owned: AtomicU64,
    /// Until when the leases held are certainly still ours (local clock).
    valid_until: Mutex<Option<Instant>>,
    /// The holder of each partition as last read, to hand events committed here to it.
    owners: Mutex<Vec<(i16, Uuid)>>,
}

impl Leases {
    /// Is partition `part` this replica's (its lease may be due for renewal)?
    pub fn holds(&self, part: i16) -> bool {
        bit(part) & self.owned.load(Ordering::Acquire) != 0
    }

    /// May this replica publish partition `part` right now?
    pub fn owns(&self, part: i16) -> bool {
        self.holds(part) && self.valid()
    }

    /// Are the leases this replica holds still certainly its own?
    pub fn valid(&self) -> bool {
        lock(&self.valid_until).is_some_and(|until| Instant::now() < until)
    }

    /// The partitions held, as a list.
    pub fn parts(&self) -> Vec<i16> {
        parts(self.owned.load(Ordering::Acquire))
    }

    /// The replica that publishes `part`, as last read.
    pub fn owner(&self, part: i16) -> Option<Uuid> {
        lock(&self.owners)
            .iter()
            .find(|(p, _)| *p == part)
            .map(|(_, owner)| *owner)
    }
}

/// What the keeper tells the driver.
pub enum Control {
    /// Newly held partitions: look for their pending events now.
    Acquired,
    /// These partitions are being handed back: answer once none of their publications is in
    /// flight and their published marks are written.
    Release(u64, oneshot::Sender<()>),
    /// These partitions were lost (our lease lapsed and another replica took them).
    Lost(u64),
}

/// Keeps this replica's leases until shutdown, then hands them all back.
pub async fn keep(
    pool: PgPool,
    me: Uuid,
    leases: Arc<Leases>,
    control: mpsc::Sender<Control>,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(RENEW);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => {}
        }
        if let Err(error) = renew(&pool, me, &leases, &control).await {
            tracing::warn!(%error, "relay leases not renewed; publication pauses when they lapse");
        }
    }
    let all = leases.owned.swap(0, Ordering::AcqRel);
    drain(&control, all).await;
    if let Err(error) = db::release(&pool, me, None).await {
        tracing::warn!(%error, "relay leases not handed back; they lapse by themselves");
    }
    metrics::gauge!("relay_partitions_owned").set(0.0);
}

/// One round: heartbeat and renewal, then hand back or take partitions to reach the share.
async fn renew(
    pool: &PgPool,
    me: Uuid,
    leases: &Leases,
    control: &mpsc::Sender<Control>,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let renewal = db::renew(pool, me, TTL).await?;
    *lock(&leases.valid_until) = Some(started + TTL - MARGIN);
    *lock(&leases.owners) = renewal.owners;
    let mut mine = mask(&renewal.mine);
    let lost = leases.owned.load(Ordering::Acquire) & !mine;
    if lost != 0 {
        leases.owned.fetch_and(!lost, Ordering::AcqRel);
        tracing::warn!(partitions = ?parts(lost), "relay partitions lost to another replica");
        let _ = control.send(Control::Lost(lost)).await;
    }
    let share = PARTITIONS.div_ceil(renewal.live.max(1) as u32);
    let held = mine.count_ones();
    if held > share {
        let excess = highest(mine, held - share);
        leases.owned.fetch_and(!excess, Ordering::AcqRel);
        drain(control, excess).await;
        db::release(pool, me, Some(&parts(excess))).await?;
        mine &= !excess;
        tracing::info!(partitions = ?parts(excess), "relay partitions handed back");
    } else if held < share {
        let claimed = mask(&db::claim(pool, me, i64::from(share - held), TTL).await?);
        if claimed != 0 {
            mine |= claimed;
            leases.owned.fetch_or(claimed, Ordering::AcqRel);
            tracing::info!(partitions = ?parts(claimed), "relay partitions taken");
            let _ = control.send(Control::Acquired).await;
        }
    }
    leases.owned.store(mine, Ordering::Release);
    metrics::gauge!("relay_partitions_owned").set(f64::from(mine.count_ones()));
    Ok(())
}

/// Asks the driver to finish what is in flight for `parts`, and waits (bounded) for it.
async fn drain(control: &mpsc::Sender<Control>, parts: u64) {
    if parts == 0 {
        return;
    }
    let (done, wait) = oneshot::channel();
    if control.send(Control::Release(parts, done)).await.is_ok()
        && tokio::time::timeout(DRAIN, wait).await.is_err()
    {
        tracing::warn!("relay publications still in flight after the drain period");
    }
}

/// The bit of partition `part`.
pub fn bit(part: i16) -> u64 {
    1u64 << (part as u32 % PARTITIONS)
}

fn mask(parts: &[i16]) -> u64 {
    parts.iter().fold(0, |mask, part| mask | bit(*part))
}

/// The partitions of a mask, lowest first.
pub fn parts(mask: u64) -> Vec<i16> {
    (0..PARTITIONS as i16)
        .filter(|p| mask & bit(*p) != 0)
        .collect()
}

/// The `n` highest partitions of `mask`.
fn highest(mask: u64, n: u32) -> u64 {
    parts(mask)
        .into_iter()
        .rev()
        .take(n as usize)
        .fold(0, |m, p| m | bit(p))
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_and_shares() {
        assert_eq!(parts(mask(&[0, 5, 63])), vec![0, 5, 63]);
        assert_eq!(parts(highest(mask(&[1, 2, 3, 40]), 2)), vec![3, 40]);
        assert_eq!(PARTITIONS.div_ceil(3), 22);
    }

    #[test]
    fn nothing_is_owned_without_a_valid_lease() {
        let leases = Leases::default();
        leases.owned.store(mask(&[7]), Ordering::Release);
        assert!(!leases.owns(7), "no renewal yet");
        *lock(&leases.valid_until) = Some(Instant::now() + Duration::from_secs(1));
        assert!(leases.owns(7));
        assert!(!leases.owns(8));
        *lock(&leases.valid_until) = Some(Instant::now() - Duration::from_millis(1));
        assert!(!leases.owns(7), "a lapsed lease publishes nothing");
    }
}
