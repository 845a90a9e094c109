//! [`Answers`]: one session's entries by `seq`, kept sorted in a ring
//! buffer, because a client numbers its writes in order: the next `seq` is
//! almost always above every other (a push at the back), the answers
//! dropped are the lowest (pops at the front), and an entry is found by its
//! offset from the front while the numbers held have no gap (binary search
//! otherwise). A B-tree did the same work with a descent, node splits and
//! merges per write, and some 80 bytes per answer.

use std::collections::VecDeque;

/// Entries by `seq`, lowest first; at most one per `seq`.
#[derive(Debug)]
pub(super) struct Answers<E> {
    entries: VecDeque<(u64, E)>,
}

impl<E> Default for Answers<E> {
    fn default() -> Self {
        Answers {
            entries: VecDeque::new(),
        }
    }
}

impl<E> Answers<E> {
    /// Where `seq` is (`Ok`) or would go (`Err`).
    fn position(&self, seq: u64) -> Result<usize, usize> {
        let (Some(&(first, _)), Some(&(last, _))) = (self.entries.front(), self.entries.back()) else {
            return Err(0);
        };
        if seq > last {
            // A new number: the common case.
            return Err(self.entries.len());
        }
        // No gap between `first` and `seq`: its offset.
        if let Some(at) = seq.checked_sub(first).and_then(|at| usize::try_from(at).ok()) {
            if self.entries.get(at).is_some_and(|(held, _)| *held == seq) {
                return Ok(at);
            }
        }
        self.entries.binary_search_by_key(&seq, |(held, _)| *held)
    }

    pub(super) fn get(&self, seq: u64) -> Option<&E> {
        let at = self.position(seq).ok()?;
        self.entries.get(at).map(|(_, entry)| entry)
    }

    pub(super) fn get_mut(&mut self, seq: u64) -> Option<&mut E> {
        let at = self.position(seq).ok()?;
        self.entries.get_mut(at).map(|(_, entry)| entry)
    }

    /// Sets the entry of `seq`, replacing any.
    pub(super) fn insert(&mut self, seq: u64, entry: E) {
        if self.entries.back().is_none_or(|(last, _)| *last < seq) {
            self.entries.push_back((seq, entry));
            return;
        }
        match self.position(seq) {
            Ok(at) => self.entries[at].1 = entry,
            Err(at) => self.entries.insert(at, (seq, entry)),
        }
    }

    /// Removes the entry of `seq`, if any.
    pub(super) fn remove(&mut self, seq: u64) -> Option<E> {
        let at = self.position(seq).ok()?;
        self.entries.remove(at).map(|(_, entry)| entry)
    }

    /// Drops every entry below `floor`.
    pub(super) fn drop_below(&mut self, floor: u64) {
        while self.entries.front().is_some_and(|(seq, _)| *seq < floor) {
            self.entries.pop_front();
        }
    }

    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Every entry, lowest `seq` first.
    pub(super) fn iter(&self) -> impl Iterator<Item = (u64, &E)> {
        self.entries.iter().map(|(seq, entry)| (*seq, entry))
    }
}

#[cfg(test)]
mod tests {
    use super::Answers;
    use std::collections::BTreeMap;

    /// Against a `BTreeMap` doing the same, in orders a client makes (in
    /// order, with gaps, out of order, resends) and in a shuffled one.
    #[test]
    fn answers_behave_as_a_sorted_map() {
        let mut orders: Vec<Vec<u64>> = vec![
            (1..200).collect(),
            (1..200).filter(|n| n % 7 != 3).collect(),
            (1..200).rev().collect(),
            (1..200).map(|n| (n * 37) % 211).collect(),
        ];
        orders.push((1..100).flat_map(|n| [n, n / 2 + 1]).collect());
        for order in orders {
            let (mut answers, mut model) = (Answers::default(), BTreeMap::new());
            for (i, &seq) in order.iter().enumerate() {
                answers.insert(seq, i);
                model.insert(seq, i);
                if i % 5 == 0 {
                    let floor = seq / 2;
                    answers.drop_below(floor);
                    model.retain(|held, _| *held >= floor);
                }
                if i % 11 == 0 {
                    assert_eq!(answers.remove(seq + 1), model.remove(&(seq + 1)));
                }
                for probe in seq.saturating_sub(3)..seq + 3 {
                    assert_eq!(answers.get(probe), model.get(&probe), "seq {probe}");
                    if let (Some(a), Some(m)) = (answers.get_mut(probe), model.get_mut(&probe)) {
                        *a += 1000;
                        *m += 1000;
                    }
                }
                assert_eq!(answers.len(), model.len());
            }
            let held: Vec<_> = answers.iter().map(|(seq, entry)| (seq, *entry)).collect();
            let expected: Vec<_> = model.iter().map(|(seq, entry)| (*seq, *entry)).collect();
            assert_eq!(held, expected);
        }
    }
}
