//! Who listens to which channel: per channel, a dense list of subscribers that the shard walks for
//! every channel packet. Adding and removing are O(1) (swap-remove with a position index).
//! Subscribers added *first* (an edge node's cascade: its copy feeds a whole node of listeners)
//! stay at the front of the list, so they are written before any listener's copy.

use std::collections::HashMap;
use std::hash::Hash;

use crate::media::router::ChannelIndex;

#[derive(Debug)]
pub struct Subscribers<K> {
    lists: Vec<Vec<K>>,
    /// Per channel: how many of the list's first entries were added first.
    front: Vec<usize>,
    position: HashMap<(K, ChannelIndex), usize>,
}

impl<K: Copy + Eq + Hash> Subscribers<K> {
    pub fn new(channels: usize) -> Self {
        Self { lists: vec![Vec::new(); channels], front: vec![0; channels], position: HashMap::new() }
    }

    /// Subscribe `key` to `channel` ahead of every subscriber not added first (an edge's
    /// cascade); false as for [`Subscribers::add`].
    pub fn add_first(&mut self, channel: ChannelIndex, key: K) -> bool {
        if !self.add(channel, key) {
            return false;
        }
        let (list, front) = (&mut self.lists[channel], &mut self.front[channel]);
        let last = list.len() - 1;
        if last > *front {
            list.swap(*front, last);
            self.position.insert((list[last], channel), last);
            self.position.insert((list[*front], channel), *front);
        }
        *front += 1;
        true
    }

    /// Subscribe `key` to `channel`; false when the channel does not exist or `key` is already in.
    pub fn add(&mut self, channel: ChannelIndex, key: K) -> bool {
        let Some(list) = self.lists.get_mut(channel) else {
            return false;
        };
        if self.position.contains_key(&(key, channel)) {
            return false;
        }
        self.position.insert((key, channel), list.len());
        list.push(key);
        true
    }

    /// Unsubscribe; false when `key` was not subscribed to `channel`.
    pub fn remove(&mut self, channel: ChannelIndex, key: K) -> bool {
        let Some(mut at) = self.position.remove(&(key, channel)) else {
            return false;
        };
        let (list, front) = (&mut self.lists[channel], &mut self.front[channel]);
        if at < *front {
            // Keep the front dense: the last of the front takes this place, this one leaves from
            // the first place behind the front.
            let last_front = *front - 1;
            list.swap(at, last_front);
            if at != last_front {
                self.position.insert((list[at], channel), at);
            }
            *front -= 1;
            at = last_front;
        }
        list.swap_remove(at);
        if let Some(moved) = list.get(at) {
            self.position.insert((*moved, channel), at);
        }
        true
    }

    pub fn of(&self, channel: ChannelIndex) -> &[K] {
        self.lists.get(channel).map(Vec::as_slice).unwrap_or(&[])
    }

    pub fn count(&self, channel: ChannelIndex) -> usize {
        self.of(channel).len()
    }

    pub fn is_empty(&self) -> bool {
        self.position.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscribers_added_first_stay_in_front_through_adds_and_removes() {
        let mut s = Subscribers::new(1);
        for listener in 10..20u32 {
            assert!(s.add(0, listener));
        }
        assert!(s.add_first(0, 1));
        assert!(s.add_first(0, 2));
        assert!(s.add(0, 20));
        let front = |s: &Subscribers<u32>| {
            let mut f = s.of(0)[..2].to_vec();
            f.sort();
            f
        };
        assert_eq!(front(&s), vec![1, 2]);
        for gone in [10, 15, 20, 11] {
            assert!(s.remove(0, gone));
            assert_eq!(front(&s), vec![1, 2], "after {gone} left");
        }
        assert!(s.remove(0, 1));
        assert_eq!(s.of(0)[0], 2, "the other cascade is still first");
        assert!(s.add_first(0, 3));
        let mut f = s.of(0)[..2].to_vec();
        f.sort();
        assert_eq!(f, vec![2, 3]);
        // Every position is right: each key removes cleanly.
        let all = s.of(0).to_vec();
        for key in all {
            assert!(s.remove(0, key));
        }
        assert!(s.is_empty());
    }

    #[test]
    fn add_remove_keep_lists_dense() {
        let mut s = Subscribers::new(2);
        assert!(s.add(0, 1u32));
        assert!(s.add(0, 2));
        assert!(s.add(0, 3));
        assert!(s.add(1, 1));
        assert!(!s.add(0, 2), "no double subscription");
        assert!(!s.add(5, 2), "no such channel");
        assert!(s.remove(0, 1));
        assert!(!s.remove(0, 1));
        let mut left = s.of(0).to_vec();
        left.sort();
        assert_eq!(left, vec![2, 3]);
        assert!(s.remove(0, 3));
        assert!(s.remove(0, 2));
        assert_eq!(s.count(0), 0);
        assert!(!s.is_empty());
        assert!(s.remove(1, 1));
        assert!(s.is_empty());
    }

    /// Relay (pivot) input: an interpreter's input track follows the channel it is subscribed to;
    /// moving it from the floor to the `fr` channel makes it carry whoever is on air there.
    #[test]
    fn relay_input_routing_follows_the_subscription() {
        use std::time::{Duration, Instant};

        use crate::ids::{EventId, InterpreterId, Language};
        use crate::media::router::{EventRouter, OnAir};
        use crate::media::{Source, SourcePacket};

        let lang = |s: &str| Language::parse(s).expect("valid");
        let mut router = EventRouter::new(&lang("en"), &[lang("fr"), lang("de")]);
        let ben = InterpreterId(2);
        router.set_on_air(1, Some(OnAir { interpreter: ben, muted: false }));
        let mut subscribers = Subscribers::new(router.channel_count());
        let ana_input = 7u32;
        subscribers.add(0, ana_input);

        let t0 = Instant::now();
        let mut heard = Vec::new();
        for tick in 0..20u64 {
            if tick == 10 {
                // Ana picks fr as her relay input.
                assert!(subscribers.remove(0, ana_input));
                assert!(subscribers.add(1, ana_input));
            }
            let now = t0 + Duration::from_millis(20 * tick);
            for (source, input) in [(Source::Floor, 1u64), (Source::Booth(ben), 2)] {
                let packet = SourcePacket {
                    event: EventId::parse("e").expect("valid"),
                    source,
                    input,
                    seq: tick,
                    ts: tick as u32 * 960,
                    marker: false,
                    payload: vec![input as u8].into(),
                    received_at: now,
                };
                let mut out = Vec::new();
                router.route(&packet, now, &mut out);
                for (channel, p) in out {
                    if subscribers.of(channel).contains(&ana_input) {
                        heard.push(p.payload[0]);
                    }
                }
            }
        }
        assert_eq!(heard, [vec![1u8; 10], vec![2u8; 10]].concat(), "the floor, then Ben relayed from fr");
    }
}
