//! GB/T 2260 division codes and the jurisdiction hierarchy (按干部管理权限) built from them.

/// The code that covers every division (the national exchange operator).
pub const NATIONAL: &str = "000000";

/// True when `code` has the form of a GB/T 2260 code: six ASCII digits read as
/// province `PP`, prefecture `CC` and county `XX`, with no province `00` (only
/// `000000` itself) and no county under a `00` prefecture. GB/T 2260 assigns
/// codes sparsely, so the exchange checks the form only; whether the code is
/// currently assigned is the registry owner's business. The form matters
/// because jurisdiction is read from it: `000100` would be a "prefecture"
/// whose province is the national code.
pub fn is_valid(code: &str) -> bool {
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let (p, c, x) = (&code[..2], &code[2..4], &code[4..]);
    code == NATIONAL || (p != "00" && (c != "00" || x == "00"))
}

/// The level a code names, read from its trailing zeros as GB/T 2260 lays them out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    National,
    Province,
    Prefecture,
    County,
}

/// Level of a valid code.
pub fn level(code: &str) -> Level {
    if code == NATIONAL {
        Level::National
    } else if code.ends_with("0000") {
        Level::Province
    } else if code.ends_with("00") {
        Level::Prefecture
    } else {
        Level::County
    }
}

/// The prefix every code under `code`'s jurisdiction starts with: `PP` for a
/// province, `PPCC` for a prefecture, the whole code for a county, empty for `000000`.
pub fn jurisdiction_prefix(code: &str) -> &str {
    match level(code) {
        Level::National => "",
        Level::Province => &code[..2],
        Level::Prefecture => &code[..4],
        Level::County => code,
    }
}

/// True when a caller at `caller` may act on a cadre managed at `target`.
pub fn covers(caller: &str, target: &str) -> bool {
    target.starts_with(jurisdiction_prefix(caller))
}

/// The chain from `code` up to `000000`, nearest first, excluding `code` itself.
/// A county's parent is its prefecture, a prefecture's its province.
pub fn ancestors(code: &str) -> Vec<String> {
    let mut out = Vec::with_capacity(3);
    match level(code) {
        Level::National => {}
        Level::Province => out.push(NATIONAL.to_string()),
        Level::Prefecture => {
            out.push(format!("{}0000", &code[..2]));
            out.push(NATIONAL.to_string());
        }
        Level::County => {
            out.push(format!("{}00", &code[..4]));
            out.push(format!("{}0000", &code[..2]));
            out.push(NATIONAL.to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jurisdiction() {
        assert!(covers("360000", "360821"));
        assert!(covers("360800", "360821"));
        assert!(!covers("360802", "360821"));
        assert!(covers("360821", "360821"));
        assert!(covers("000000", "110101"));
        assert!(!covers("360000", "110101"));
        assert_eq!(ancestors("360821"), ["360800", "360000", "000000"]);
        assert_eq!(ancestors("360000"), ["000000"]);
        assert!(is_valid("360821"));
        assert!(!is_valid("36082"));
        assert!(!is_valid("36082a"));
        assert!(is_valid("000000"));
        assert!(is_valid("360000"));
        assert!(is_valid("360800"));
        assert!(
            !is_valid("000100"),
            "no province 00 below the national code"
        );
        assert!(!is_valid("001234"));
        assert!(!is_valid("360021"), "no county under a 00 prefecture");
    }
}

/// Property tests: validity and jurisdiction recomputed from the definitions
/// in DESIGN §1 (province `PP0000` covers `PP…`, prefecture `PPCC00` covers
/// `PPCC…`, a county itself, `000000` everything).
#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;

    fn config() -> ProptestConfig {
        ProptestConfig {
            cases: 512,
            failure_persistence: None,
            ..ProptestConfig::default()
        }
    }

    /// Codes of every level, with shared prefixes often enough that covering happens.
    fn code() -> impl Strategy<Value = String> {
        (
            prop_oneof![Just("36".to_string()), Just("00".to_string()), "[0-9]{2}"],
            prop_oneof![Just("08".to_string()), Just("00".to_string()), "[0-9]{2}"],
            prop_oneof![Just("21".to_string()), Just("00".to_string()), "[0-9]{2}"],
        )
            .prop_map(|(p, c, x)| format!("{p}{c}{x}"))
    }

    /// Whether `caller` covers `target`, straight from the definition.
    fn covers_by_definition(caller: &str, target: &str) -> bool {
        let (p, c, x) = (&caller[..2], &caller[2..4], &caller[4..]);
        match (p, c, x) {
            ("00", "00", "00") => true,
            (_, "00", "00") => target[..2] == *p,
            (_, _, "00") => target[..4] == caller[..4],
            _ => target == caller,
        }
    }

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn valid_means_six_digits_in_the_layout(s in any::<String>(), d in "[0-9]{5,7}", c in code()) {
            for s in [s.as_str(), d.as_str(), c.as_str()] {
                let digits = s.chars().count() == 6 && s.chars().all(|c| c.is_ascii_digit());
                let by_definition = digits
                    && (s == "000000" || (!s.starts_with("00") && (&s[2..4] != "00" || &s[4..] == "00")));
                prop_assert_eq!(is_valid(s), by_definition, "{:?}", s);
            }
        }

        #[test]
        fn covering_follows_the_definition(a in code(), b in code(), c in code()) {
            prop_assert_eq!(covers(&a, &b), covers_by_definition(&a, &b), "{} {}", a, b);
            prop_assert!(covers(&a, &a));
            prop_assert!(covers(NATIONAL, &a));
            if covers(&a, &b) && covers(&b, &c) {
                prop_assert!(covers(&a, &c), "{} {} {}", a, b, c);
            }
        }

        #[test]
        fn ancestors_are_the_codes_that_cover_a_code(a in code()) {
            // Only codes the exchange accepts have a place in the hierarchy.
            if !is_valid(&a) {
                return Ok(());
            }
            let up = ancestors(&a);
            prop_assert!(!up.contains(&a));
            prop_assert_eq!(up.last().map(String::as_str), if a == NATIONAL { None } else { Some(NATIONAL) });
            for x in &up {
                prop_assert!(is_valid(x));
                prop_assert!(covers(x, &a), "{} should cover {}", x, a);
            }
            // Nearest first: each one covers the one before it.
            for w in up.windows(2) {
                prop_assert!(covers(&w[1], &w[0]), "{:?}", up);
            }
            // The county, prefecture and province forms of `a` that differ
            // from it are exactly its ancestors (the Cedar hierarchy relies on it).
            let mut by_definition: Vec<String> = [
                format!("{}00", &a[..4]),
                format!("{}0000", &a[..2]),
                NATIONAL.to_string(),
            ]
            .into_iter()
            .filter(|x| *x != a && covers_by_definition(x, &a))
            .collect();
            by_definition.dedup();
            let mut got = up.clone();
            got.dedup();
            prop_assert_eq!(got, by_definition);
        }
    }
}
