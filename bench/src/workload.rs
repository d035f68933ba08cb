//! Request generation: which object each request asks for and which bytes.
//! Pure functions of a seeded RNG, so they are tested without a socket.

use rand::Rng;

/// How the object of each request is picked.
#[derive(Debug, Clone)]
pub enum Pick {
    /// Every object equally likely.
    Uniform,
    /// Zipf popularity: object k (0-based) with weight 1/(k+1)^s.
    Zipf(Zipf),
}

/// Which bytes each request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// The entire object (no Range header).
    Whole,
    /// `size` bytes at a random offset; with `aligned`, offsets are multiples of `size`.
    Range { size: u64, aligned: bool },
}

/// One planned request: an object index and an inclusive byte range, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Planned {
    pub object: usize,
    pub range: Option<(u64, u64)>,
}

/// Generates requests over objects of the given sizes.
#[derive(Debug, Clone)]
pub struct Plan {
    pub pick: Pick,
    pub shape: Shape,
}

impl Plan {
    pub fn next<R: Rng>(&self, rng: &mut R, sizes: &[u64]) -> Planned {
        let object = match &self.pick {
            Pick::Uniform => rng.random_range(0..sizes.len()),
            Pick::Zipf(z) => z.sample(rng),
        };
        let range = match self.shape {
            Shape::Whole => None,
            Shape::Range { size, aligned } => random_range(rng, sizes[object], size, aligned),
        };
        Planned { object, range }
    }
}

/// A random inclusive range of `size` bytes inside an object of `object_size`
/// bytes (the whole object when it is smaller; `None` for an empty object).
pub fn random_range<R: Rng>(
    rng: &mut R,
    object_size: u64,
    size: u64,
    aligned: bool,
) -> Option<(u64, u64)> {
    if object_size == 0 || size == 0 {
        return None;
    }
    if size >= object_size {
        return Some((0, object_size - 1));
    }
    let start = if aligned {
        // Whole blocks only: k*size + size <= object_size.
        let blocks = object_size / size;
        rng.random_range(0..blocks) * size
    } else {
        rng.random_range(0..=object_size - size)
    };
    Some((start, start + size - 1))
}

/// Zipf sampling over `n` ranks by inverse CDF (binary search in a table).
#[derive(Debug, Clone)]
pub struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    pub fn new(n: usize, exponent: f64) -> Zipf {
        let mut cdf = Vec::with_capacity(n);
        let mut total = 0.0;
        for k in 1..=n {
            total += 1.0 / (k as f64).powf(exponent);
            cdf.push(total);
        }
        for c in &mut cdf {
            *c /= total;
        }
        Zipf { cdf }
    }

    pub fn len(&self) -> usize {
        self.cdf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.cdf.is_empty()
    }

    /// A rank in `0..n` (0 is the most popular).
    pub fn sample<R: Rng>(&self, rng: &mut R) -> usize {
        let u: f64 = rng.random();
        self.cdf
            .partition_point(|&c| c < u)
            .min(self.cdf.len().saturating_sub(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::SmallRng;
    use rand::SeedableRng;

    #[test]
    fn ranges_stay_in_bounds() {
        let mut rng = SmallRng::seed_from_u64(7);
        for &(object, size) in &[(1u64 << 20, 4096u64), (10_000, 4096), (4096, 4096), (5, 1)] {
            for _ in 0..10_000 {
                let (s, e) = random_range(&mut rng, object, size, false).expect("range");
                assert!(s <= e && e < object, "{s}-{e} outside {object}");
                assert_eq!(e - s + 1, size);
            }
        }
        // Smaller object than the range: the whole object.
        assert_eq!(random_range(&mut rng, 100, 4096, false), Some((0, 99)));
        assert_eq!(random_range(&mut rng, 0, 4096, false), None);
    }

    #[test]
    fn unaligned_offsets_reach_both_ends() {
        let mut rng = SmallRng::seed_from_u64(1);
        let (mut first, mut last) = (false, false);
        for _ in 0..20_000 {
            let (s, e) = random_range(&mut rng, 16, 4, false).expect("range");
            first |= s == 0;
            last |= e == 15;
        }
        assert!(first && last);
    }

    #[test]
    fn aligned_offsets_are_multiples() {
        let mut rng = SmallRng::seed_from_u64(3);
        let object = 10 * 4096 + 100; // a partial last block is never requested
        let mut seen = [false; 10];
        for _ in 0..10_000 {
            let (s, e) = random_range(&mut rng, object, 4096, true).expect("range");
            assert_eq!(s % 4096, 0);
            assert_eq!(e - s + 1, 4096);
            assert!(e < object);
            seen[(s / 4096) as usize] = true;
        }
        assert!(
            seen.iter().all(|&b| b),
            "every block is reachable: {seen:?}"
        );
    }

    #[test]
    fn plan_picks_valid_objects() {
        let mut rng = SmallRng::seed_from_u64(5);
        let sizes = [1000, 50, 1 << 20];
        let plan = Plan {
            pick: Pick::Uniform,
            shape: Shape::Range {
                size: 64,
                aligned: false,
            },
        };
        let mut counts = [0; 3];
        for _ in 0..3000 {
            let p = plan.next(&mut rng, &sizes);
            let (s, e) = p.range.expect("range");
            assert!(e < sizes[p.object] && s <= e);
            counts[p.object] += 1;
        }
        assert!(counts.iter().all(|&c| c > 800), "{counts:?}");
        let whole = Plan {
            pick: Pick::Uniform,
            shape: Shape::Whole,
        };
        assert_eq!(whole.next(&mut rng, &sizes).range, None);
    }

    /// The frequency of rank k should fall like 1/k^s: the log-log slope of the
    /// observed counts over the top ranks estimates -s.
    #[test]
    fn zipf_shape_matches_exponent() {
        for &s in &[0.8, 1.0, 1.3] {
            let zipf = Zipf::new(1000, s);
            let mut rng = SmallRng::seed_from_u64(11);
            let mut counts = vec![0u64; 1000];
            for _ in 0..400_000 {
                counts[zipf.sample(&mut rng)] += 1;
            }
            // Least-squares slope of ln(count) on ln(rank) for ranks 1..=20.
            let pts: Vec<(f64, f64)> = (0..20)
                .map(|k| (((k + 1) as f64).ln(), (counts[k] as f64).ln()))
                .collect();
            let n = pts.len() as f64;
            let mx = pts.iter().map(|p| p.0).sum::<f64>() / n;
            let my = pts.iter().map(|p| p.1).sum::<f64>() / n;
            let slope = pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum::<f64>()
                / pts.iter().map(|p| (p.0 - mx).powi(2)).sum::<f64>();
            assert!((slope + s).abs() < 0.1, "exponent {s}: slope {slope}");
            // And the head ratio directly: rank 1 vs rank 2 is 2^s.
            let ratio = counts[0] as f64 / counts[1] as f64;
            assert!((ratio / 2f64.powf(s) - 1.0).abs() < 0.08, "ratio {ratio}");
        }
    }

    #[test]
    fn zipf_zero_exponent_is_uniform() {
        let zipf = Zipf::new(4, 0.0);
        let mut rng = SmallRng::seed_from_u64(2);
        let mut counts = [0u32; 4];
        for _ in 0..40_000 {
            counts[zipf.sample(&mut rng)] += 1;
        }
        assert!(
            counts.iter().all(|&c| (9_000..11_000).contains(&c)),
            "{counts:?}"
        );
    }
}
