//! Relative positions put into buckets: DeBERTa's log-spaced buckets (`make_log_bucket_position`);
//! T5's `relative_position_bucket` belongs here too.

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

#[cfg(test)]
mod tests {
    use super::*;

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
