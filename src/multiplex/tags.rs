//! The tag space of one connection: a slab indexed by tag, with a free list.
//!
//! Taking a tag, finding what it is for and freeing it are O(1). A tag is
//! free only once [`Tags::free`] is called — by the connection task, when
//! the tag's answer has been read — so a tag in flight is never handed out
//! again, whoever stopped waiting for it.

use super::protocol::Tag;

/// The tags in flight on a connection, each with what it is for (`S`).
#[derive(Debug)]
pub(super) struct Tags<S> {
    /// What tag `n` is for at index `n - 1`; `None` while it is free.
    slots: Vec<Option<S>>,
    /// Freed tags, taken again before any tag never used.
    free: Vec<Tag>,
    /// The largest tag the protocol can carry.
    max: Tag,
    in_use: usize,
}

impl<S> Tags<S> {
    /// Tags `1..=max` (at least one).
    pub(super) fn new(max: Tag) -> Self {
        Tags {
            slots: Vec::new(),
            free: Vec::new(),
            max: max.max(1),
            in_use: 0,
        }
    }

    /// A tag is free for the next request.
    pub(super) fn has_room(&self) -> bool {
        !self.free.is_empty() || (self.slots.len() as u64) < u64::from(self.max)
    }

    /// How many tags are in flight.
    pub(super) fn len(&self) -> usize {
        self.in_use
    }

    pub(super) fn is_empty(&self) -> bool {
        self.in_use == 0
    }

    /// Takes a free tag for `slot`; `None` if all are in flight.
    pub(super) fn take(&mut self, slot: S) -> Option<Tag> {
        let tag = match self.free.pop() {
            Some(tag) => {
                // Free tags index empty slots: checked, never assumed.
                let cell = self.slots.get_mut(index(tag)?)?;
                *cell = Some(slot);
                tag
            }
            None => {
                if !self.has_room() {
                    return None;
                }
                self.slots.push(Some(slot));
                Tag::try_from(self.slots.len()).ok()?
            }
        };
        self.in_use += 1;
        Some(tag)
    }

    /// What `tag` is for, if it is in flight.
    pub(super) fn get_mut(&mut self, tag: Tag) -> Option<&mut S> {
        self.slots.get_mut(index(tag)?)?.as_mut()
    }

    /// Frees `tag` and returns what it was for; `None` if it was not in
    /// flight (a peer's answer for a tag never sent, or sent twice).
    pub(super) fn free(&mut self, tag: Tag) -> Option<S> {
        let slot = self.slots.get_mut(index(tag)?)?.take()?;
        self.free.push(tag);
        self.in_use -= 1;
        Some(slot)
    }

    /// Every tag in flight, with what it is for.
    pub(super) fn iter_mut(&mut self) -> impl Iterator<Item = (Tag, &mut S)> {
        (1..=self.max)
            .zip(self.slots.iter_mut())
            .filter_map(|(tag, slot)| Some((tag, slot.as_mut()?)))
    }

    /// Frees every tag, returning what they were for.
    pub(super) fn drain(&mut self) -> impl Iterator<Item = S> + '_ {
        self.free.clear();
        self.in_use = 0;
        self.slots.drain(..).flatten()
    }
}

/// Tag `n` lives at index `n - 1`; tag 0 is never used.
fn index(tag: Tag) -> Option<usize> {
    usize::try_from(tag.checked_sub(1)?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tag_is_never_handed_out_while_in_flight() {
        let mut tags = Tags::new(3);
        let a = tags.take('a').unwrap();
        let b = tags.take('b').unwrap();
        let c = tags.take('c').unwrap();
        assert_eq!((a, b, c), (1, 2, 3), "tags are 1..=max, never 0");
        assert!(!tags.has_room());
        assert_eq!(tags.take('d'), None, "all three in flight: none to give");
        assert_eq!(tags.free(b), Some('b'));
        assert_eq!(tags.take('e'), Some(b), "only the freed tag comes back");
        assert_eq!(tags.get_mut(b), Some(&mut 'e'));
        assert_eq!(tags.len(), 3);
    }

    #[test]
    fn freeing_a_tag_not_in_flight_says_so() {
        let mut tags = Tags::new(u32::MAX);
        let a = tags.take(()).unwrap();
        assert_eq!(tags.free(0), None, "tag 0 is never sent");
        assert_eq!(tags.free(a + 1), None, "never taken");
        assert_eq!(tags.free(u32::MAX), None);
        assert_eq!(tags.free(a), Some(()));
        assert_eq!(tags.free(a), None, "answered twice");
        assert!(tags.is_empty());
    }
}
