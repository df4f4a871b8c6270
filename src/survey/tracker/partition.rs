//! The partition of a step's tokens into classes of identical vectors,
//! kept from step to step by the tracker and updated where tokens moved.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use super::RowIdentity;
use crate::survey::group::{refine_by_stored, Group, Grouping};

/// A hasher for keys that are already hashes (the rows' 64-bit hashes).
#[derive(Default)]
struct HashIsKey(u64);

impl Hasher for HashIsKey {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used; fold anything else in.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ b as u64;
        }
    }
    fn write_u64(&mut self, x: u64) {
        self.0 = x;
    }
}

/// The end of a chain of classes, or no class.
const NONE: u32 = u32::MAX;

/// The partition of the tokens into classes of identical vectors, kept
/// from step to step and updated only where tokens moved: a step where `k`
/// tokens moved costs O(k · dim), not a regrouping of every token.
#[derive(Clone, Default)]
pub(super) struct Partition {
    /// Per token: its class.
    pub(super) class_of: Vec<u32>,
    /// Per token: its index in its class's member list.
    pos: Vec<u32>,
    /// Per class id: its tokens (any order); empty for a free id.
    pub(super) members: Vec<Vec<u32>>,
    /// Per class id: the hash of its vector.
    hash_of: Vec<u64>,
    /// Classes by the hash of their vector: the first class of a chain
    /// through `next_same` (byte comparison settles collisions). A chain,
    /// not a list per hash, so that a class made or retired allocates
    /// nothing: a step where many tokens take new vectors stays cheap.
    by_hash: HashMap<u64, u32, BuildHasherDefault<HashIsKey>>,
    /// Per class id: the next class whose vector has the same hash
    /// ([`NONE`] at the end of the chain).
    next_same: Vec<u32>,
    /// Class ids free for reuse.
    free: Vec<u32>,
    /// Classes of each size (index: size), and the largest size in use.
    sizes: Vec<u32>,
    pub(super) largest: usize,
    pub(super) classes: usize,
    pub(super) holes: usize,
    pub(super) in_holes: usize,
}

impl Partition {
    /// The partition of a first step: its rows bucketed by hash, each
    /// bucket split by comparing the rows' bytes.
    pub(super) fn build(id: RowIdentity, hashes: &[u64]) -> Self {
        let rows = id.rows();
        let mut keyed: Vec<(u64, usize)> = hashes.iter().copied().zip(0..rows).collect();
        keyed.sort_unstable();
        let buckets = Grouping {
            groups: keyed
                .chunk_by(|a, b| a.0 == b.0)
                .filter(|b| b.len() > 1)
                .map(|b| Group {
                    ids: b.iter().map(|&(_, i)| i).collect(),
                })
                .collect(),
            ..Grouping::default()
        };
        let grouping = refine_by_stored(buckets, id.bytes, id.row_len);
        let mut p = Partition {
            class_of: vec![u32::MAX; rows],
            pos: vec![0; rows],
            sizes: vec![0; rows + 1],
            ..Partition::default()
        };
        for g in &grouping.groups {
            let c = p.new_class(hashes[g.ids[0]]);
            for &t in &g.ids {
                p.add(t, c);
            }
        }
        for (t, &h) in hashes.iter().enumerate() {
            if p.class_of[t] == u32::MAX {
                let c = p.new_class(h);
                p.add(t, c);
            }
        }
        p
    }

    pub(super) fn size(&self, c: u32) -> usize {
        self.members[c as usize].len()
    }

    pub(super) fn new_class(&mut self, hash: u64) -> u32 {
        let c = match self.free.pop() {
            Some(c) => c,
            None => {
                self.members.push(Vec::new());
                self.hash_of.push(0);
                self.next_same.push(NONE);
                (self.members.len() - 1) as u32
            }
        };
        self.hash_of[c as usize] = hash;
        self.next_same[c as usize] = self.by_hash.insert(hash, c).unwrap_or(NONE);
        self.classes += 1;
        c
    }

    /// Moves the counters for class `c` going from size `from` to `to`.
    pub(super) fn resize(&mut self, from: usize, to: usize) {
        if from > 0 {
            self.sizes[from] -= 1;
        }
        if to > 0 {
            self.sizes[to] += 1;
        }
        if from >= 2 {
            self.holes -= 1;
            self.in_holes -= from;
        }
        if to >= 2 {
            self.holes += 1;
            self.in_holes += to;
        }
        if to > self.largest {
            self.largest = to;
        }
        while self.largest > 0 && self.sizes[self.largest] == 0 {
            self.largest -= 1;
        }
    }

    pub(super) fn add(&mut self, t: usize, c: u32) {
        let n = self.size(c);
        self.class_of[t] = c;
        self.pos[t] = n as u32;
        self.members[c as usize].push(t as u32);
        self.resize(n, n + 1);
    }

    /// Takes `t` out of its class; returns the class, and whether it is now empty.
    pub(super) fn remove(&mut self, t: usize) -> (u32, bool) {
        let c = self.class_of[t];
        let n = self.size(c);
        let list = &mut self.members[c as usize];
        let k = self.pos[t] as usize;
        list.swap_remove(k);
        if let Some(&moved) = list.get(k) {
            self.pos[moved as usize] = k as u32;
        }
        self.resize(n, n - 1);
        (c, n == 1)
    }

    /// Retires an empty class.
    pub(super) fn retire(&mut self, c: u32) {
        self.unlink(c);
        self.classes -= 1;
        self.free.push(c);
    }

    /// Gives class `c` the vector of hash `hash` (its members to come).
    pub(super) fn rehash(&mut self, c: u32, hash: u64) {
        self.unlink(c);
        self.hash_of[c as usize] = hash;
        self.next_same[c as usize] = self.by_hash.insert(hash, c).unwrap_or(NONE);
    }

    /// Takes class `c` out of the chain of its hash.
    fn unlink(&mut self, c: u32) {
        let h = self.hash_of[c as usize];
        let after = std::mem::replace(&mut self.next_same[c as usize], NONE);
        match self.by_hash.get(&h).copied() {
            Some(head) if head == c => {
                if after == NONE {
                    self.by_hash.remove(&h);
                } else {
                    self.by_hash.insert(h, after);
                }
            }
            Some(mut x) => {
                while x != NONE {
                    let next = self.next_same[x as usize];
                    if next == c {
                        self.next_same[x as usize] = after;
                        break;
                    }
                    x = next;
                }
            }
            None => {}
        }
    }

    /// The class whose vector is row `t` of `id` (hash `h`), if there is one.
    pub(super) fn find(&self, id: RowIdentity, t: usize, h: u64) -> Option<u32> {
        let row = id.row(t);
        let mut c = *self.by_hash.get(&h)?;
        while c != NONE {
            let first = self.members[c as usize].first();
            if first.is_some_and(|&r| id.row(r as usize) == row) {
                return Some(c);
            }
            c = self.next_same[c as usize];
        }
        None
    }

    /// Sorted members of class `c`.
    pub(super) fn sorted(&self, c: u32) -> Vec<usize> {
        let mut v: Vec<usize> = self.members[c as usize]
            .iter()
            .map(|&t| t as usize)
            .collect();
        v.sort_unstable();
        v
    }
}
