//! A thread's reorder buffer, shared by all of a replica's sockets on the thread: events are
//! released in seq order with no gap; a later one waits here until the missing ones arrive or
//! are fetched. When a hole cannot be filled it is skipped explicitly ([`Sequencer::skip`])
//! and the sockets are told to resynchronise: an event is never silently lost.

use std::{collections::BTreeMap, sync::Arc};

use crate::fanout::Event;

/// Seq order for one thread.
#[derive(Default)]
pub struct Sequencer {
    /// The next seq to release; `None` until the starting point is known.
    next: Option<i64>,
    held: BTreeMap<i64, Arc<Event>>,
}

impl Sequencer {
    /// Starts after `last_seq` (the thread's last stored seq when the subscription began):
    /// anything at or before it is history, not live.
    pub fn start_after(&mut self, last_seq: i64) -> Vec<Arc<Event>> {
        self.next = Some(last_seq + 1);
        self.held = self.held.split_off(&(last_seq + 1));
        self.release()
    }

    /// Takes a live or fetched event; returns the events now releasable, in order.
    pub fn push(&mut self, event: Arc<Event>) -> Vec<Arc<Event>> {
        if self.next.is_some_and(|next| event.seq < next) {
            return Vec::new();
        }
        self.held.entry(event.seq).or_insert(event);
        self.release()
    }

    /// The missing range, when events wait behind a hole: `(after, until)`, both excluded.
    pub fn hole(&self) -> Option<(i64, i64)> {
        let next = self.next?;
        let (&first, _) = self.held.first_key_value()?;
        (first > next).then_some((next - 1, first))
    }

    /// Events waiting behind the hole.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// Gives up on the current hole: releases what waits behind it. Returns the last missing
    /// seq (the point clients must resynchronise to) and the released events.
    pub fn skip(&mut self) -> Option<(i64, Vec<Arc<Event>>)> {
        let (_, until) = self.hole()?;
        self.next = Some(until);
        Some((until - 1, self.release()))
    }

    fn release(&mut self) -> Vec<Arc<Event>> {
        let Some(mut next) = self.next else {
            return Vec::new();
        };
        let mut out = Vec::new();
        while let Some(event) = self.held.remove(&next) {
            out.push(event);
            next += 1;
        }
        self.next = Some(next);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(seq: i64) -> Arc<Event> {
        Arc::new(Event {
            thread_id: "t".into(),
            seq,
            frame: Default::default(),
            ends_thread: false,
            received: std::time::Instant::now(),
        })
    }

    fn seqs(events: &[Arc<Event>]) -> Vec<i64> {
        events.iter().map(|e| e.seq).collect()
    }

    #[test]
    fn holds_everything_until_the_start_is_known() {
        let mut s = Sequencer::default();
        assert!(s.push(event(6)).is_empty());
        assert!(s.push(event(4)).is_empty());
        assert_eq!(s.hole(), None);
        // 4 is history; 5 is missing.
        assert!(s.start_after(4).is_empty());
        assert_eq!(s.hole(), Some((4, 6)));
        assert_eq!(seqs(&s.push(event(5))), vec![5, 6]);
    }

    #[test]
    fn releases_in_order_and_drops_duplicates() {
        let mut s = Sequencer::default();
        s.start_after(0);
        assert_eq!(seqs(&s.push(event(1))), vec![1]);
        assert!(s.push(event(3)).is_empty());
        assert!(s.push(event(4)).is_empty());
        assert_eq!(s.hole(), Some((1, 3)));
        assert_eq!(seqs(&s.push(event(2))), vec![2, 3, 4]);
        assert!(s.push(event(2)).is_empty(), "a duplicate is dropped");
        assert!(s.push(event(4)).is_empty());
        assert_eq!(s.hole(), None);
    }

    #[test]
    fn a_skipped_hole_is_reported_never_silent() {
        let mut s = Sequencer::default();
        s.start_after(10);
        assert!(s.push(event(13)).is_empty());
        assert!(s.push(event(14)).is_empty());
        let (resync_to, released) = s.skip().unwrap();
        assert_eq!(resync_to, 12);
        assert_eq!(seqs(&released), vec![13, 14]);
        assert!(
            s.push(event(11)).is_empty(),
            "late arrivals of a skipped hole stay out"
        );
        assert_eq!(s.skip().map(|(seq, _)| seq), None);
    }
}
