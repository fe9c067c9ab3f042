//! The choice of a weighted forward (ALB's weighted target groups): each group gets exactly its
//! share of every `total` consecutive requests, interleaved rather than in runs, with one atomic
//! counter and no lock.

use std::sync::atomic::{AtomicU64, Ordering};

/// Groups (as route indexes) and their weights, compiled for picking.
#[derive(Debug)]
pub struct Weighted {
    /// Route index and the end of its range in `0..total`, in config order; groups of weight 0
    /// have an empty range and are never picked.
    ranges: Vec<(usize, u64)>,
    total: u64,
    /// Coprime with `total`, so that `n * step % total` visits every slot once per cycle.
    step: u64,
    next: AtomicU64,
}

impl Weighted {
    /// `weights` has at least one weight above 0 (validation sees to it); were they all 0, the
    /// first group takes every request.
    pub fn new(weights: &[(usize, u16)]) -> Weighted {
        let mut end = 0u64;
        let ranges = weights
            .iter()
            .map(|&(route, w)| {
                end += u64::from(w);
                (route, end)
            })
            .collect();
        let total = end.max(1);
        Weighted {
            ranges,
            total,
            step: spreading_step(total),
            next: AtomicU64::new(0),
        }
    }

    /// The route index for the next request.
    pub fn pick(&self) -> usize {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let slot = (n % self.total) * self.step % self.total;
        self.ranges
            .iter()
            .find(|(_, end)| slot < *end)
            .or(self.ranges.first())
            .map_or(0, |(route, _)| *route)
    }
}

/// A step near the golden section of `total` that shares no factor with it: consecutive
/// requests land far apart in the ranges, so each group's requests are spread over the cycle.
fn spreading_step(total: u64) -> u64 {
    let start = (total * 618 / 1000).max(1);
    (start..total + start)
        .map(|s| s % total.max(2))
        .find(|&s| s > 0 && gcd(s, total) == 1)
        .unwrap_or(1)
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(w: &Weighted, n: usize, routes: usize) -> Vec<usize> {
        let mut c = vec![0; routes];
        for _ in 0..n {
            c[w.pick()] += 1;
        }
        c
    }

    #[test]
    fn every_cycle_gives_each_group_exactly_its_weight() {
        let w = Weighted::new(&[(0, 90), (1, 10)]);
        assert_eq!(counts(&w, 100, 2), vec![90, 10]);
        let w = Weighted::new(&[(0, 999), (1, 1), (2, 0)]);
        assert_eq!(counts(&w, 1000, 3), vec![999, 1, 0]);
        let w = Weighted::new(&[(0, 1), (1, 1), (2, 1)]);
        assert_eq!(counts(&w, 300, 3), vec![100, 100, 100]);
    }

    #[test]
    fn requests_are_interleaved_not_in_runs() {
        let w = Weighted::new(&[(0, 50), (1, 50)]);
        let first: Vec<usize> = (0..10).map(|_| w.pick()).collect();
        assert!(first.contains(&0) && first.contains(&1), "{first:?}");
    }

    #[test]
    fn steps_are_coprime_with_the_total() {
        for total in 1..=2000 {
            let s = spreading_step(total);
            assert!(s >= 1 && (total == 1 || gcd(s, total) == 1), "{total}: {s}");
        }
    }

    #[test]
    fn a_single_group_or_zero_weights_pick_the_first() {
        let w = Weighted::new(&[(3, 5)]);
        assert_eq!(w.pick(), 3);
        let w = Weighted::new(&[(4, 0), (5, 0)]);
        assert_eq!(w.pick(), 4);
    }
}
