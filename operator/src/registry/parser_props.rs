//! Property tests of the registry's input parsers: whatever a client sends (paths, digests,
//! names, tags, ranges, manifests), parsing never panics, and what it accepts is what the
//! specification allows.

use proptest::prelude::*;

use super::digest::Digest;
use super::manifest::parse_manifest;
use super::names::{Route, parse_route, valid_repository_name, valid_tag};
use super::ranges::{RangeDecision, decide_range, parse_content_range};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn any_path_routes_without_panicking_and_keeps_its_parts(rest in "[a-z0-9/._:-]{0,80}") {
        if let Some(route) = parse_route(&rest) {
            // The name and reference are slices of the path, in order.
            match route {
                Route::Manifest { name, reference } => {
                    prop_assert!(rest.starts_with(name));
                    prop_assert!(rest.ends_with(reference));
                }
                Route::Blob { name, digest } | Route::Referrers { name, digest } => {
                    prop_assert!(rest.starts_with(name));
                    prop_assert!(rest.ends_with(digest));
                }
                Route::Tags { name } | Route::UploadStart { name } | Route::Images { name }
                | Route::Upload { name, .. } => prop_assert!(rest.starts_with(name)),
                Route::Catalog => prop_assert_eq!(rest.as_str(), "_catalog"),
            }
        }
    }

    #[test]
    fn digests_parse_only_in_their_canonical_form(s in "(sha256|sha512|md5|SHA256)?:?[0-9a-fA-F]{0,130}") {
        if let Ok(d) = s.parse::<Digest>() {
            prop_assert_eq!(d.to_string(), s.clone(), "a parsed digest prints as it came");
            prop_assert_eq!(d.hex().len(), d.algorithm().hex_len());
            prop_assert!(d.hex().bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        }
    }

    #[test]
    fn digests_of_bytes_round_trip(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let d = Digest::sha256(&bytes);
        prop_assert_eq!(d.to_string().parse::<Digest>().unwrap(), d);
    }

    #[test]
    fn accepted_names_and_tags_follow_the_spec(name in "[a-zA-Z0-9._/-]{0,300}", tag in "[a-zA-Z0-9._-]{0,140}") {
        if valid_repository_name(&name) {
            prop_assert!(name.len() <= 255 * 8);
            prop_assert!(name.split('/').all(|c| !c.is_empty() && c.len() <= 255
                && c.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))));
        }
        if valid_tag(&tag) {
            prop_assert!(!tag.is_empty() && tag.len() <= 128);
            prop_assert!(tag.as_bytes()[0].is_ascii_alphanumeric() || tag.as_bytes()[0] == b'_');
        }
    }

    #[test]
    fn ranges_never_escape_the_blob(header in "bytes=[0-9]{0,20}-[0-9]{0,20}|[ -~]{0,30}", size in 0u64..10_000_000) {
        match decide_range(Some(&header), size) {
            RangeDecision::Partial { start, end } => {
                prop_assert!(start < end, "{header} on {size}: [{start}, {end})");
                prop_assert!(end <= size);
            }
            RangeDecision::Full | RangeDecision::Unsatisfiable => {}
        }
        if let Some((a, b)) = parse_content_range(&header) {
            prop_assert!(a <= b);
        }
    }

    #[test]
    fn arbitrary_bytes_are_refused_or_parsed_as_manifests(
        body in proptest::collection::vec(any::<u8>(), 0..512),
        ct in proptest::option::of("[a-z./+-]{0,60}"),
    ) {
        let _ = parse_manifest(&body, ct.as_deref());
    }

    #[test]
    fn manifest_shaped_json_never_panics(
        media in "(application/vnd\\.oci\\.image\\.(manifest|index)\\.v1\\+json|application/vnd\\.docker\\.distribution\\.manifest\\.v2\\+json|x)",
        digest in "sha256:[0-9a-f]{64}|sha256:zz|",
        size in proptest::option::of(-5i64..1_000_000),
        layers in 0usize..4,
    ) {
        let desc = serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest, "size": size});
        let body = serde_json::json!({
            "schemaVersion": 2, "mediaType": media,
            "config": desc, "layers": vec![desc.clone(); layers], "manifests": vec![desc; layers],
        });
        let _ = parse_manifest(body.to_string().as_bytes(), Some(&media));
    }
}
