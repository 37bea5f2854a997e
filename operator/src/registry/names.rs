//! Repository names, tags and the routing of `/v2/...` paths. Pure: no I/O.

/// The longest repository name accepted (ECR's limit).
pub const MAX_NAME_LEN: usize = 256;

/// The longest `/`-separated component: it is a file name on a filesystem.
pub const MAX_COMPONENT_LEN: usize = 255;

/// Is `name` a repository name of the distribution spec's grammar
/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*`, at most 256 bytes
/// with components of at most 255?
pub fn valid_repository_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_NAME_LEN && name.split('/').all(valid_path_component)
}

/// One `/`-separated component: alphanumeric runs joined by `.`, `_`, `__` or any run of `-`.
fn valid_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    if b.len() > MAX_COMPONENT_LEN {
        return false;
    }
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        // A separator run: ".", "_", "__" or "-+", followed by an alphanumeric.
        let start = i;
        match b[i] {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if i < b.len() && b[i] == b'_' {
                    i += 1;
                }
            }
            b'-' => {
                while i < b.len() && b[i] == b'-' {
                    i += 1;
                }
            }
            _ => return false,
        }
        if i == start || i >= b.len() || !alnum(b[i]) {
            return false;
        }
    }
    true
}

/// Is `tag` a tag of the spec's grammar `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`?
pub fn valid_tag(tag: &str) -> bool {
    let b = tag.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b[1..]
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

/// What a `/v2/<rest>` path addresses. The repository name is kept raw (validated later),
/// so that a bad name gets NAME_INVALID rather than a 404.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route<'a> {
    Catalog,
    Tags {
        name: &'a str,
    },
    Manifest {
        name: &'a str,
        reference: &'a str,
    },
    Blob {
        name: &'a str,
        digest: &'a str,
    },
    /// `POST /v2/<name>/blobs/uploads/`.
    UploadStart {
        name: &'a str,
    },
    /// `/v2/<name>/blobs/uploads/<id>`.
    Upload {
        name: &'a str,
        id: &'a str,
    },
    Referrers {
        name: &'a str,
        digest: &'a str,
    },
    /// `/v2/<name>/_kubecs/images`: the image list of the ECR API (see `registry::images`).
    Images {
        name: &'a str,
    },
}

/// Routes the part of the path after `/v2/`. Names may have any number of segments (and a
/// segment may itself be called `blobs` or `manifests`), so the route is read from the end.
pub fn parse_route(rest: &str) -> Option<Route<'_>> {
    if rest == "_catalog" {
        return Some(Route::Catalog);
    }
    // name + "/" + suffix, where the name is everything before the suffix.
    let split = |suffix_segments: usize| -> Option<(&str, Vec<&str>)> {
        let mut idx = rest.len();
        for _ in 0..suffix_segments {
            idx = rest[..idx].rfind('/')?;
        }
        let name = &rest[..idx];
        (!name.is_empty()).then(|| (name, rest[idx + 1..].split('/').collect()))
    };
    if let Some((name, tail)) = split(3)
        && tail[0] == "blobs"
        && tail[1] == "uploads"
    {
        return Some(if tail[2].is_empty() {
            Route::UploadStart { name }
        } else {
            Route::Upload { name, id: tail[2] }
        });
    }
    let (name, tail) = split(2)?;
    match (tail[0], tail[1]) {
        ("tags", "list") => Some(Route::Tags { name }),
        ("manifests", r) if !r.is_empty() => Some(Route::Manifest { name, reference: r }),
        ("blobs", "uploads") => Some(Route::UploadStart { name }),
        ("blobs", d) if !d.is_empty() => Some(Route::Blob { name, digest: d }),
        ("referrers", d) if !d.is_empty() => Some(Route::Referrers { name, digest: d }),
        // `_kubecs` is no valid name component, so this never shadows a repository.
        (super::images::SEGMENT, "images") => Some(Route::Images { name }),
        _ => None,
    }
}

/// Does `tag` match the ECR wildcard `filter` (`*` matches any run of characters)?
pub fn wildcard_match(filter: &str, tag: &str) -> bool {
    let (p, t) = (filter.as_bytes(), tag.as_bytes());
    // Greedy match with backtracking to the last star: linear for these short inputs.
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_component_longer_than_255_bytes_is_invalid() {
        // Each component is a file name on a filesystem: at most 255 bytes.
        assert!(valid_repository_name(&"a".repeat(255)));
        assert!(!valid_repository_name(&"a".repeat(256)));
        assert!(valid_repository_name(&format!("x/{}", "a".repeat(253))));
    }

    #[test]
    fn repository_names() {
        for ok in [
            "a",
            "library/ubuntu",
            "team-a/web-app",
            "a__b",
            "a_b.c---d/e",
            "x/y/z/0",
            "conformance/repo1",
        ] {
            assert!(valid_repository_name(ok), "{ok} refused");
        }
        for bad in [
            "", "A", "a/", "/a", "a//b", "a___b", "a..b", "-a", "a-", "a_", "a:b", "a/_x", "a b",
        ] {
            assert!(!valid_repository_name(bad), "{bad} accepted");
        }
        let long = format!("a/{}", "a".repeat(254));
        assert!(valid_repository_name(&long));
        assert!(!valid_repository_name(&format!("{long}a")));
    }

    #[test]
    fn tags() {
        assert!(valid_tag("latest"));
        assert!(valid_tag("_x"));
        assert!(valid_tag("V1.2-rc_3"));
        assert!(valid_tag(&"a".repeat(128)));
        assert!(!valid_tag(&"a".repeat(129)));
        assert!(!valid_tag(".x"));
        assert!(!valid_tag("-x"));
        assert!(!valid_tag("a:b"));
        assert!(!valid_tag(""));
    }

    #[test]
    fn routes_read_from_the_end() {
        use Route::*;
        assert_eq!(parse_route("_catalog"), Some(Catalog));
        assert_eq!(parse_route("a/b/tags/list"), Some(Tags { name: "a/b" }));
        assert_eq!(
            parse_route("a/manifests/b/manifests/latest"),
            Some(Manifest {
                name: "a/manifests/b",
                reference: "latest"
            })
        );
        assert_eq!(
            parse_route("x/blobs/uploads/"),
            Some(UploadStart { name: "x" })
        );
        assert_eq!(
            parse_route("x/blobs/uploads"),
            Some(UploadStart { name: "x" })
        );
        assert_eq!(
            parse_route("x/blobs/blobs/uploads/abc"),
            Some(Upload {
                name: "x/blobs",
                id: "abc"
            })
        );
        assert_eq!(
            parse_route("x/blobs/uploads/blobs/sha256:00"),
            Some(Blob {
                name: "x/blobs/uploads",
                digest: "sha256:00"
            })
        );
        assert_eq!(
            parse_route("r/referrers/sha256:00"),
            Some(Referrers {
                name: "r",
                digest: "sha256:00"
            })
        );
        assert_eq!(parse_route("r/manifests/"), None);
        assert_eq!(parse_route("manifests/latest"), None);
        assert_eq!(parse_route("r/unknown/x"), None);
    }

    #[test]
    fn wildcards() {
        assert!(wildcard_match("latest", "latest"));
        assert!(!wildcard_match("latest", "latest2"));
        assert!(wildcard_match("dev-*", "dev-1"));
        assert!(wildcard_match("dev-*", "dev-"));
        assert!(!wildcard_match("dev-*", "prod-1"));
        assert!(wildcard_match("*-snapshot", "1.0-snapshot"));
        assert!(wildcard_match("a*b*c", "axxbyyc"));
        assert!(!wildcard_match("a*b*c", "axxbyy"));
        assert!(wildcard_match("*", ""));
        assert!(wildcard_match("**a", "ba"));
    }
}
