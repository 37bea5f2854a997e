//! Byte ranges: `Range` on blob GET, `Content-Range` on upload chunks. Pure.

/// What a blob GET with a `Range` header serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeDecision {
    /// No usable single range: the whole blob, 200.
    Full,
    /// 206 with `[start, end)`.
    Partial { start: u64, end: u64 },
    /// 416.
    Unsatisfiable,
}

/// Interprets `Range: bytes=a-b | a- | -n` against a blob of `size` bytes (RFC 9110): the end
/// is clamped to the blob; a start past the end or a reversed range is unsatisfiable.
/// Multiple ranges and other units are ignored (the whole blob is served).
pub fn decide_range(header: Option<&str>, size: u64) -> RangeDecision {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return RangeDecision::Full;
    };
    if spec.contains(',') {
        return RangeDecision::Full;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeDecision::Full;
    };
    let (a, b) = (a.trim(), b.trim());
    let num = |s: &str| s.parse::<u64>().ok();
    match (a.is_empty(), b.is_empty()) {
        // Suffix: the last n bytes.
        (true, false) => match num(b) {
            Some(0) => RangeDecision::Unsatisfiable,
            Some(_) if size == 0 => RangeDecision::Unsatisfiable,
            Some(n) => RangeDecision::Partial {
                start: size.saturating_sub(n),
                end: size,
            },
            None => RangeDecision::Full,
        },
        (false, true) => match num(a) {
            Some(start) if start < size => RangeDecision::Partial { start, end: size },
            Some(_) => RangeDecision::Unsatisfiable,
            None => RangeDecision::Full,
        },
        (false, false) => match (num(a), num(b)) {
            (Some(start), Some(last)) if start > last => RangeDecision::Unsatisfiable,
            (Some(start), Some(_)) if start >= size => RangeDecision::Unsatisfiable,
            (Some(start), Some(last)) => RangeDecision::Partial {
                start,
                end: last.saturating_add(1).min(size),
            },
            _ => RangeDecision::Full,
        },
        (true, true) => RangeDecision::Full,
    }
}

/// Parses an upload chunk's `Content-Range: <start>-<end>` (inclusive end; a `bytes ` prefix
/// and a `/<total>` suffix are tolerated) into its start and length. None when malformed,
/// or when the length does not fit in a u64.
pub fn parse_content_range(header: &str) -> Option<(u64, u64)> {
    let s = header.trim();
    let s = s.strip_prefix("bytes ").unwrap_or(s).trim();
    let s = s.split('/').next()?;
    let (a, b) = s.split_once('-')?;
    let (a, b): (u64, u64) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
    Some((a, b.checked_sub(a)?.checked_add(1)?))
}

/// The `Range` header value of an upload at `offset`: `0-<last byte>` (distribution's
/// convention: `0-0` when empty).
pub fn upload_range(offset: u64) -> String {
    format!("0-{}", offset.saturating_sub(1))
}

#[cfg(test)]
mod tests {
    use super::RangeDecision::*;
    use super::*;

    #[test]
    fn a_content_range_whose_length_overflows_is_malformed() {
        // Every byte there is: its length does not fit in a u64.
        assert_eq!(parse_content_range("0-18446744073709551615"), None);
        assert_eq!(
            parse_content_range("1-18446744073709551615"),
            Some((1, u64::MAX))
        );
    }

    #[test]
    fn blob_ranges() {
        let d = |h: &str| decide_range(Some(h), 2048);
        assert_eq!(
            d("bytes=500-1499"),
            Partial {
                start: 500,
                end: 1500
            }
        );
        assert_eq!(
            d("bytes=500-"),
            Partial {
                start: 500,
                end: 2048
            }
        );
        assert_eq!(
            d("bytes=-500"),
            Partial {
                start: 1548,
                end: 2048
            }
        );
        assert_eq!(
            d("bytes=-5000"),
            Partial {
                start: 0,
                end: 2048
            }
        );
        assert_eq!(
            d("bytes=2000-5000"),
            Partial {
                start: 2000,
                end: 2048
            }
        );
        assert_eq!(d("bytes=500-0"), Unsatisfiable);
        assert_eq!(d("bytes=5000-10000"), Unsatisfiable);
        assert_eq!(d("bytes=2048-"), Unsatisfiable);
        assert_eq!(d("bytes=-0"), Unsatisfiable);
        assert_eq!(d("bytes=0-1,5-6"), Full);
        assert_eq!(d("items=0-1"), Full);
        assert_eq!(d("bytes=x-y"), Full);
        assert_eq!(decide_range(None, 10), Full);
        assert_eq!(decide_range(Some("bytes=0-"), 0), Unsatisfiable);
    }

    #[test]
    fn content_ranges() {
        // Start and length.
        assert_eq!(parse_content_range("0-1023"), Some((0, 1024)));
        assert_eq!(
            parse_content_range("bytes 1024-2047/4096"),
            Some((1024, 1024))
        );
        assert_eq!(parse_content_range("5-4"), None);
        assert_eq!(parse_content_range("abc"), None);
        assert_eq!(upload_range(0), "0-0");
        assert_eq!(upload_range(1024), "0-1023");
    }
}
