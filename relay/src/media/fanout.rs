//! Who listens to which channel: per channel, a dense list of subscribers that the shard walks for
//! every channel packet. Adding and removing are O(1) (swap-remove with a position index).

use std::collections::HashMap;
use std::hash::Hash;

use crate::media::router::ChannelIndex;

#[derive(Debug)]
pub struct Subscribers<K> {
    lists: Vec<Vec<K>>,
    position: HashMap<(K, ChannelIndex), usize>,
}

impl<K: Copy + Eq + Hash> Subscribers<K> {
    pub fn new(channels: usize) -> Self {
        Self { lists: vec![Vec::new(); channels], position: HashMap::new() }
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
        let Some(at) = self.position.remove(&(key, channel)) else {
            return false;
        };
        let list = &mut self.lists[channel];
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
}
