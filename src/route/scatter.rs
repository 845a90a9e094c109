//! [`Scatter`] and [`Gather`]: a batch split per endpoint, and its answers
//! put back in the caller's order.

use crate::batch::BatchResponse;
use crate::BoxError;

/// The requests of a batch, grouped by the endpoint each goes to, each
/// group in the batch's order.
#[derive(Debug)]
pub(crate) struct Scatter<Req> {
    parts: Vec<Part<Req>>,
    len: usize,
}

/// The requests of a batch that go to one endpoint.
#[derive(Debug)]
pub(crate) struct Part<Req> {
    /// The endpoint, as the function given to [`Scatter::new`] numbered it.
    pub(crate) endpoint: usize,
    /// Where each request stands in the batch.
    pub(crate) positions: Vec<usize>,
    /// The requests, in the batch's order.
    pub(crate) requests: Vec<Req>,
}

impl<Req> Scatter<Req> {
    /// Groups `requests` by `endpoint_of` (parts in order of first use).
    ///
    /// Two passes: the first places every request and counts each
    /// endpoint's; the second moves each request into a part allocated at
    /// its exact size. Finding a request's part is an index into a table by
    /// endpoint, so a batch costs the same per request whatever the number
    /// of endpoints (a search of the parts made each request cost one step
    /// per endpoint in use).
    pub(crate) fn new(requests: Vec<Req>, mut endpoint_of: impl FnMut(&Req) -> usize) -> Self {
        let len = requests.len();
        const NONE: u32 = u32::MAX;
        // Each request's endpoint, then each endpoint's part (NONE: no part yet).
        let endpoints: Vec<usize> = requests.iter().map(&mut endpoint_of).collect();
        let mut part_of: Vec<u32> = Vec::new();
        let mut counts: Vec<usize> = Vec::new();
        let mut order: Vec<usize> = Vec::new();
        for &endpoint in &endpoints {
            if endpoint >= part_of.len() {
                part_of.resize(endpoint + 1, NONE);
            }
            let part = &mut part_of[endpoint];
            if *part == NONE {
                *part = order.len() as u32;
                order.push(endpoint);
                counts.push(0);
            }
            counts[*part as usize] += 1;
        }
        let mut parts: Vec<Part<Req>> = order
            .iter()
            .zip(&counts)
            .map(|(&endpoint, &count)| Part {
                endpoint,
                positions: Vec::with_capacity(count),
                requests: Vec::with_capacity(count),
            })
            .collect();
        for (position, (request, endpoint)) in requests.into_iter().zip(endpoints).enumerate() {
            let part = &mut parts[part_of[endpoint] as usize];
            part.positions.push(position);
            part.requests.push(request);
        }
        Scatter { parts, len }
    }

    /// How many requests the batch held.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The parts, one per endpoint.
    pub(crate) fn into_parts(self) -> Vec<Part<Req>> {
        self.parts
    }
}

/// The answers of a scattered batch, collected in any order and returned in
/// the batch's.
#[derive(Debug)]
pub(crate) struct Gather<Resp> {
    answers: Vec<Option<Result<Resp, BoxError>>>,
}

impl<Resp> Gather<Resp> {
    /// Room for `len` answers.
    pub(crate) fn new(len: usize) -> Self {
        Gather {
            answers: (0..len).map(|_| None).collect(),
        }
    }

    /// The answer of the request at `position`.
    pub(crate) fn put(&mut self, position: usize, answer: Result<Resp, BoxError>) {
        if let Some(slot) = self.answers.get_mut(position) {
            *slot = Some(answer);
        }
    }

    /// The answers, in the batch's order; a position nobody answered (a
    /// bug of the caller) is an error, not a panic.
    pub(crate) fn finish(self) -> BatchResponse<Resp, BoxError> {
        self.answers
            .into_iter()
            .map(|answer| answer.unwrap_or_else(|| Err("no answer was gathered for this request".into())))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_is_split_by_endpoint_and_put_back_in_order() {
        let scatter = Scatter::new((0..10).collect(), |n: &i32| (*n % 3) as usize);
        assert_eq!(scatter.len(), 10);
        let parts = scatter.into_parts();
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[1].positions, [1, 4, 7]);
        assert_eq!(parts[1].requests, [1, 4, 7]);
        let mut gather = Gather::new(10);
        for part in parts.into_iter().rev() {
            for (position, request) in part.positions.into_iter().zip(part.requests) {
                gather.put(position, Ok(request * 10));
            }
        }
        let answers: Vec<i32> = gather.finish().into_iter().map(|a| a.unwrap()).collect();
        assert_eq!(answers, (0..10).map(|n| n * 10).collect::<Vec<_>>());
    }

    #[test]
    fn parts_come_in_order_of_first_use_at_their_exact_size() {
        // Endpoints far apart and out of order: 900 first, then 3, then 40.
        let endpoint = |n: &usize| [900, 3, 900, 40, 3, 900][*n];
        let parts = Scatter::new((0..6).collect(), endpoint).into_parts();
        let shape: Vec<(usize, Vec<usize>)> =
            parts.iter().map(|p| (p.endpoint, p.positions.clone())).collect();
        assert_eq!(shape, [(900, vec![0, 2, 5]), (3, vec![1, 4]), (40, vec![3])]);
        for part in &parts {
            assert_eq!(part.requests, part.positions);
            assert_eq!(part.requests.capacity(), part.requests.len());
        }
        assert!(Scatter::new(Vec::<usize>::new(), |_| 0).into_parts().is_empty());
    }

    #[test]
    fn a_missing_answer_is_an_error() {
        let mut gather = Gather::<u8>::new(2);
        gather.put(0, Ok(1));
        gather.put(7, Ok(1));
        let answers = gather.finish();
        assert!(answers[0].is_ok() && answers[1].is_err());
    }
}
