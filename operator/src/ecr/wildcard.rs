//! Whole-string wildcard matching shared by tag patterns, mutability exclusion filters and
//! policy actions. `*` matches any run of characters (also none); `?` matches exactly one
//! character only where the caller asks for it (IAM actions), since ECR tag patterns know
//! only `*`. Linear backtracking on the last `*`: no regex, no blow-up on `a*a*a*...`.

/// Whether `text` matches all of `pattern`.
pub(crate) fn matches(pattern: &str, text: &str, question_mark: bool) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    // Where the last `*` was, and the text position it is currently standing for.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == t[ti] || (question_mark && p[pi] == '?')) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            // Let the last `*` swallow one more character and retry after it.
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::matches;
    use proptest::prelude::*;

    #[test]
    fn star_is_anchored_and_greedy_enough() {
        assert!(matches("prod*", "prod", false));
        assert!(matches("prod*", "prod-1", false));
        assert!(!matches("prod*", "preprod", false));
        assert!(matches("*prod", "preprod", false));
        assert!(matches("*test*1*2*3", "my-test-1-2-3", false));
        assert!(!matches("*test*1*2*3", "my-test-1-2-3-4", false));
        assert!(matches("*", "", false));
        assert!(matches("", "", false));
        assert!(!matches("", "a", false));
        assert!(matches("a*b*c", "abc", false));
        assert!(matches("a*b*c", "aXbYbZc", false));
        assert!(!matches("a*b*c", "aXbYbZ", false));
        assert!(matches("exact", "exact", false));
        assert!(!matches("exact", "exactly", false));
    }

    #[test]
    fn question_mark_only_when_asked() {
        assert!(matches("ecr:Put?mage", "ecr:PutImage", true));
        assert!(!matches("ecr:Put?mage", "ecr:PutImage", false));
        assert!(matches("v?", "v?", false));
        assert!(!matches("v?", "v1x", true));
    }

    /// Reference: a plain recursive matcher, obviously right and exponential.
    fn naive(p: &[char], t: &[char]) -> bool {
        match p.split_first() {
            None => t.is_empty(),
            Some(('*', rest)) => (0..=t.len()).any(|i| naive(rest, &t[i..])),
            Some((c, rest)) => t.first() == Some(c) && naive(rest, &t[1..]),
        }
    }

    proptest! {
        #[test]
        fn agrees_with_naive_matcher(p in "[ab*]{0,7}", t in "[ab]{0,9}") {
            let pc: Vec<char> = p.chars().collect();
            let tc: Vec<char> = t.chars().collect();
            prop_assert_eq!(matches(&p, &t, false), naive(&pc, &tc));
        }
    }
}
