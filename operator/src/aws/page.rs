//! Pagination as AWS pages: `maxResults` bounds a page, `nextToken` resumes after the last
//! item of the previous one. Items are listed in a stable order (by ARN), and the token is
//! the last ARN returned, so a page never repeats or skips an item that stays.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::error::AwsError;

/// One page of `items` (sorted and deduplicated here): at most `max` (default and ceiling
/// `limit`), after the item the token names.
pub fn page(
    mut items: Vec<String>,
    max: Option<i32>,
    token: Option<&str>,
    limit: usize,
) -> Result<(Vec<String>, Option<String>), AwsError> {
    items.sort();
    items.dedup();
    let max = match max {
        None => limit,
        Some(n) if n >= 1 && n as usize <= limit => n as usize,
        Some(n) => {
            return Err(AwsError::invalid_parameter(format!(
                "maxResults must be between 1 and {limit}, not {n}."
            )));
        }
    };
    let start = match token.filter(|t| !t.is_empty()) {
        None => 0,
        Some(t) => {
            let after = URL_SAFE_NO_PAD
                .decode(t)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| AwsError::invalid_parameter("Invalid nextToken."))?;
            items.partition_point(|i| *i <= after)
        }
    };
    let rest = &items[start.min(items.len())..];
    let taken: Vec<String> = rest.iter().take(max).cloned().collect();
    let next = (rest.len() > max)
        .then(|| taken.last().map(|l| URL_SAFE_NO_PAD.encode(l)))
        .flatten();
    Ok((taken, next))
}

/// [`page`] over `items` named by `key`: the page's items (the first of each key), in key
/// order, and the next token.
pub fn page_by<'a, T>(
    items: &'a [T],
    key: impl Fn(&T) -> String,
    max: Option<i32>,
    token: Option<&str>,
    limit: usize,
) -> Result<(Vec<&'a T>, Option<String>), AwsError> {
    let (keys, next) = page(items.iter().map(&key).collect(), max, token, limit)?;
    let taken = keys
        .iter()
        .filter_map(|k| items.iter().find(|i| key(i) == *k))
        .collect();
    Ok((taken, next))
}

#[cfg(test)]
mod tests {
    use super::page;

    #[test]
    fn pages_cover_every_item_once() {
        let items: Vec<String> = (0..25).map(|i| format!("arn:{i:02}")).collect();
        let mut seen = Vec::new();
        let mut token = None;
        loop {
            let (p, next) = page(items.clone(), Some(10), token.as_deref(), 100).unwrap();
            seen.extend(p);
            match next {
                Some(t) => token = Some(t),
                None => break,
            }
        }
        assert_eq!(seen, items);
    }

    #[test]
    fn bounds_and_bad_tokens_are_refused() {
        assert!(page(vec![], Some(0), None, 100).is_err());
        assert!(page(vec![], Some(101), None, 100).is_err());
        assert!(page(vec!["a".into()], None, Some("%%%"), 100).is_err());
        let (p, next) = page(vec!["b".into(), "a".into()], None, None, 100).unwrap();
        assert_eq!((p, next), (vec!["a".to_string(), "b".to_string()], None));
    }
}
