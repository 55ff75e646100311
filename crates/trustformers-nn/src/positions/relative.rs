//! Relative positions put into buckets: DeBERTa's log-spaced buckets
//! (`make_log_bucket_position`) and T5's (`relative_position_bucket`).

use candle_core::{Device, Tensor};
use trustformers_core::Result;

/// DeBERTa's `make_log_bucket_position` for one distance `rel = query - key`, in f32 as
/// transformers computes it: distances within `bucket_size / 2` are kept, longer ones are
/// put into log-spaced buckets up to `max_position`.
pub fn log_bucket(rel: i64, bucket_size: usize, max_position: usize) -> i64 {
    let mid = (bucket_size / 2) as i64;
    let abs = if rel < mid && rel > -mid {
        mid - 1
    } else {
        rel.abs()
    };
    if abs <= mid {
        return rel;
    }
    let log_pos = ((abs as f32 / mid as f32).ln()
        / ((max_position as f32 - 1.0) / mid as f32).ln()
        * (mid - 1) as f32)
        .ceil()
        + mid as f32;
    log_pos as i64 * rel.signum()
}

/// T5's `relative_position_bucket` for one distance `rel = key - query`, in f32 as
/// transformers computes it. Bidirectional (the encoder): half the buckets for keys after
/// the query; unidirectional (the decoder): keys after the query share bucket 0. Distances
/// below half the (remaining) buckets keep a bucket each, longer ones share log-spaced
/// buckets up to `max_distance`.
pub fn t5_bucket(rel: i64, bidirectional: bool, num_buckets: usize, max_distance: usize) -> usize {
    let (mut buckets, mut base) = (num_buckets as i64, 0);
    let dist = if bidirectional {
        buckets /= 2;
        if rel > 0 {
            base = buckets;
        }
        rel.abs()
    } else {
        -rel.min(0)
    };
    let max_exact = buckets / 2;
    if dist < max_exact {
        return (base + dist) as usize;
    }
    // torch: log(dist.float() / max_exact) / math.log(max_distance / max_exact) * (buckets -
    // max_exact), truncated.
    let ratio = (dist as f32 / max_exact as f32).ln();
    let span = (max_distance as f64 / max_exact as f64).ln() as f32;
    let large = max_exact + (ratio / span * (buckets - max_exact) as f32) as i64;
    (base + large.min(buckets - 1)) as usize
}

/// The bucket of every (query, key) pair for `queries` queries after `past` positions over
/// `keys` keys (`past + queries` in a decoder; see [`t5_bucket`]).
///
/// # Shapes
/// -> `[queries, keys]` u32.
pub fn t5_buckets(
    past: usize,
    queries: usize,
    keys: usize,
    bidirectional: bool,
    num_buckets: usize,
    max_distance: usize,
    device: &Device,
) -> Result<Tensor> {
    let ids: Vec<u32> = (0..queries)
        .flat_map(|i| {
            (0..keys).map(move |j| {
                let rel = j as i64 - (past + i) as i64;
                t5_bucket(rel, bidirectional, num_buckets, max_distance) as u32
            })
        })
        .collect();
    Ok(Tensor::from_vec(ids, (queries, keys), device)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t5_buckets_match_transformers() {
        // T5Attention._relative_position_bucket(rel, bidirectional, 32, 128) at these
        // distances (key - query).
        let bidirectional = [
            (0, 0),
            (3, 19),
            (-3, 3),
            (-7, 7),
            (-8, 8),
            (-20, 10),
            (20, 26),
            (-127, 15),
            (-500, 15),
            (500, 31),
        ];
        for (rel, want) in bidirectional {
            assert_eq!(t5_bucket(rel, true, 32, 128), want, "bidirectional {rel}");
        }
        let causal = [
            (5, 0),
            (0, 0),
            (-5, 5),
            (-15, 15),
            (-16, 16),
            (-40, 23),
            (-1000, 31),
        ];
        for (rel, want) in causal {
            assert_eq!(t5_bucket(rel, false, 32, 128), want, "causal {rel}");
        }
    }

    #[test]
    fn buckets_match_transformers() {
        // transformers' make_log_bucket_position(rel, 256, 512) at these distances.
        let cases = [
            (0, 0),
            (5, 5),
            (-127, -127),
            (128, 128),
            (129, 129),
            (200, 169),
            (-511, -255),
        ];
        for (rel, want) in cases {
            assert_eq!(log_bucket(rel, 256, 512), want, "{rel}");
        }
    }
}
