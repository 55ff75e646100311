//! Prefix caching: the KV caches of finished sequences, kept for new prompts that begin
//! the same way (a shared system prompt, a chat that grows by a turn). A new sequence
//! starts from a copy of the cache with the longest shared beginning, cut back to it, and
//! computes only the rest of its prompt.

use trustformers::Cache;

/// At least this many shared tokens make a copy worth it.
pub const MIN_SHARED_TOKENS: usize = 16;

/// Caches by the tokens they hold, least recently used first.
pub struct PrefixCache {
    entries: Vec<(Vec<u32>, Cache)>,
    capacity: usize,
}

impl PrefixCache {
    /// Keeps at most `capacity` caches (0: none).
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: Vec::new(),
            capacity,
        }
    }

    /// Keeps `cache`, which holds `ids`. An entry whose tokens begin this one's adds
    /// nothing any more and goes.
    pub fn insert(&mut self, ids: Vec<u32>, cache: Cache) {
        if self.capacity == 0 || ids.len() < MIN_SHARED_TOKENS {
            return;
        }
        self.entries.retain(|(held, _)| !ids.starts_with(held));
        self.entries.push((ids, cache));
        if self.entries.len() > self.capacity {
            self.entries.remove(0);
        }
    }

    /// A copy of the cache sharing the longest beginning with `prompt`, and how many
    /// tokens it shares (at most all but the prompt's last, which must still run).
    pub fn lookup(&mut self, prompt: &[u32]) -> Option<(Cache, usize)> {
        let limit = prompt.len().saturating_sub(1);
        let (best, shared) = self
            .entries
            .iter()
            .enumerate()
            .map(|(i, (held, _))| {
                let n = held.iter().zip(prompt).take_while(|(a, b)| a == b).count();
                (i, n.min(limit))
            })
            .max_by_key(|&(i, n)| (n, i))?;
        if shared < MIN_SHARED_TOKENS {
            return None;
        }
        // Most recently used last.
        let entry = self.entries.remove(best);
        let cache = entry.1.clone();
        self.entries.push(entry);
        Some((cache, shared))
    }

    /// Bytes the kept caches hold.
    pub fn bytes(&self) -> usize {
        self.entries.iter().map(|(_, c)| c.memory_bytes()).sum()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use trustformers::KvCache;

    fn cache() -> Cache {
        Cache::Kv(KvCache::new(1))
    }

    #[test]
    fn the_longest_shared_beginning_wins_and_the_oldest_goes() {
        let mut p = PrefixCache::new(2);
        let a: Vec<u32> = (0..40).collect();
        let b: Vec<u32> = (0..20).chain(100..120).collect();
        p.insert(a.clone(), cache());
        p.insert(b.clone(), cache());
        let prompt: Vec<u32> = (0..30).chain([7]).collect();
        assert_eq!(p.lookup(&prompt).unwrap().1, 30);
        // Too little in common.
        assert!(p.lookup(&(0..10).collect::<Vec<_>>()).is_none());
        // The whole prompt held: all but its last token.
        assert_eq!(p.lookup(&a[..25]).unwrap().1, 24);
        // `a` was used last: a third entry pushes `b` out.
        p.insert((200..240).collect(), cache());
        assert!(
            p.lookup(&b).is_some_and(|(_, n)| n == 20),
            "b shares 20 with a"
        );
        assert_eq!(p.entries.len(), 2);
        // An entry that extends another replaces it; short ones are not kept.
        p.insert((0..50).collect(), cache());
        assert!(p.entries.iter().all(|(held, _)| held != &a));
        assert_eq!(p.entries.len(), 2);
        p.insert((0..5).collect(), cache());
        assert_eq!(PrefixCache::new(0).lookup(&prompt).map(|x| x.1), None);
    }
}
