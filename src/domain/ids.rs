//! Identifier checks: 公民身份号码 (GB 11643, ISO 7064 MOD 11-2) and 统一社会信用代码 (GB 32100, mod 31).

/// True when `id` is an 18-character citizen identity number whose check
/// character matches GB 11643-1999 (ISO 7064 MOD 11-2) and whose birth date is a
/// real calendar date.
pub fn is_valid_id_number(id: &str) -> bool {
    let b = id.as_bytes();
    if b.len() != 18 || !b[..17].iter().all(u8::is_ascii_digit) {
        return false;
    }
    let expected = id_number_check_char(&b[..17]);
    if b[17].to_ascii_uppercase() != expected {
        return false;
    }
    birth_date_of(id).is_some()
}

/// The canonical form of a 公民身份号码 as submitted: the check character `x`
/// upper-cased, so that `…x` and `…X` are one person in every lookup, filter,
/// comparison and stored row. Every input edge applies it before anything else.
pub fn canonical_id_number(id: &str) -> String {
    id.to_ascii_uppercase()
}

/// The check character for the first 17 digits (weights 2^(17-i) mod 11).
pub fn id_number_check_char(first17: &[u8]) -> u8 {
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    const CHECK: &[u8; 11] = b"10X98765432";
    let sum: u32 = first17
        .iter()
        .zip(WEIGHTS)
        .map(|(d, w)| u32::from(d - b'0') * w)
        .sum();
    CHECK[(sum % 11) as usize]
}

/// The birth date (YYYY-MM-DD) encoded in positions 7–14, if it is a real date.
pub fn birth_date_of(id: &str) -> Option<String> {
    let s = id.get(6..14)?;
    // Slicing below is by byte; a multi-byte character inside the window
    // would split there and panic, so anything but ASCII digits is no date.
    if !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let y: i32 = s[..4].parse().ok()?;
    let m: u8 = s[4..6].parse().ok()?;
    let d: u8 = s[6..8].parse().ok()?;
    let month = time::Month::try_from(m).ok()?;
    time::Date::from_calendar_date(y, month, d).ok()?;
    Some(format!("{}-{}-{}", &s[..4], &s[4..6], &s[6..8]))
}

/// Masked form shown to agencies that may see a cadre but not the id number:
/// the division prefix and the last four characters stay, the birth date does not.
pub fn mask_id_number(id: &str) -> String {
    if id.len() != 18 || !id.is_ascii() {
        return "*".repeat(id.chars().count());
    }
    format!("{}{}{}", &id[..6], "*".repeat(8), &id[14..])
}

const CREDIT_CHARS: &[u8; 31] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";
const CREDIT_WEIGHTS: [u32; 17] = [
    1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28,
];

/// The GB 32100-2015 check character for the first 17 characters, or `None`
/// when one of them is outside the code's 31-character alphabet.
pub fn credit_code_check_char(first17: &[u8]) -> Option<u8> {
    let mut sum = 0u32;
    for (c, w) in first17.iter().zip(CREDIT_WEIGHTS) {
        let v = CREDIT_CHARS.iter().position(|x| x == c)? as u32;
        sum += v * w;
    }
    let check = (31 - sum % 31) % 31;
    Some(CREDIT_CHARS[check as usize])
}

/// True when `code` is an 18-character 统一社会信用代码 with a valid check character.
pub fn is_valid_credit_code(code: &str) -> bool {
    let b = code.as_bytes();
    b.len() == 18 && credit_code_check_char(&b[..17]) == Some(b[17])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_numbers() {
        // The GB 11643 worked example.
        assert!(is_valid_id_number("11010519491231002X"));
        assert!(!is_valid_id_number("110105194912310021"));
        assert!(!is_valid_id_number("11010519491331002X"));
        assert_eq!(mask_id_number("11010519491231002X"), "110105********002X");
        assert_eq!(birth_date_of("11010519491231002X").unwrap(), "1949-12-31");
    }

    #[test]
    fn credit_codes() {
        // Published codes of two central SOEs / institutions.
        assert!(is_valid_credit_code("91350100M000100Y43"));
        assert!(!is_valid_credit_code("91350100M000100Y44"));
        assert!(!is_valid_credit_code("91350100M000100Y4"));
        let mut c = *b"91110000100000000?";
        c[17] = credit_code_check_char(&c[..17]).unwrap();
        assert!(is_valid_credit_code(std::str::from_utf8(&c).unwrap()));
    }
}

/// Property tests: each check is recomputed from the standard's own definition
/// (not from the tables above) and compared with the validators.
#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;

    /// GB 11643 / ISO 7064 MOD 11-2 from the definition: position i (1-based,
    /// from the left) of the 17 body digits weighs 2^(18-i) mod 11; the check
    /// value is (12 - sum mod 11) mod 11, written `X` when it is 10.
    fn mod11_2(first17: &str) -> char {
        let sum: u64 = first17
            .bytes()
            .enumerate()
            .map(|(i, d)| u64::from(d - b'0') * ((1u64 << (17 - i)) % 11))
            .sum();
        match (12 - sum % 11) % 11 {
            10 => 'X',
            v => char::from_digit(v as u32, 10).unwrap(),
        }
    }

    /// A real Gregorian date, by the leap-year rule rather than a date library.
    fn real_date(y: u32, m: u32, d: u32) -> bool {
        let leap = (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400);
        let days = match m {
            1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
            4 | 6 | 9 | 11 => 30,
            2 if leap => 29,
            2 => 28,
            _ => return false,
        };
        (1..=days).contains(&d)
    }

    const ALPHABET: &str = "0123456789ABCDEFGHJKLMNPQRTUWXY";

    /// GB 32100 from the definition: character i (0-based) weighs 3^i mod 31;
    /// the check is 31 - sum mod 31, written `0` when that is 31.
    fn mod31(first17: &str) -> char {
        let sum: u64 = first17
            .chars()
            .enumerate()
            .map(|(i, c)| ALPHABET.find(c).unwrap() as u64 * (3u64.pow(i as u32) % 31))
            .sum();
        let v = 31 - sum % 31;
        ALPHABET.chars().nth((v % 31) as usize).unwrap()
    }

    fn config() -> ProptestConfig {
        ProptestConfig {
            cases: 512,
            failure_persistence: None,
            ..ProptestConfig::default()
        }
    }

    /// Body digits with a birth date that is usually real but sometimes not.
    fn id_body() -> impl Strategy<Value = String> {
        (
            "[0-9]{6}",
            prop_oneof![3 => 1900u32..2100, 1 => 0u32..10000],
            prop_oneof![3 => 1u32..=12, 1 => 0u32..100],
            prop_oneof![3 => 1u32..=31, 1 => 0u32..100],
            "[0-9]{3}",
        )
            .prop_map(|(div, y, m, d, seq)| format!("{div}{y:04}{m:02}{d:02}{seq}"))
    }

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn id_number_accepts_exactly_its_check_character(body in id_body()) {
            let expected = mod11_2(&body);
            let y: u32 = body[6..10].parse().unwrap();
            let m: u32 = body[10..12].parse().unwrap();
            let d: u32 = body[12..14].parse().unwrap();
            let date_ok = real_date(y, m, d);
            prop_assert_eq!(id_number_check_char(body.as_bytes()) as char, expected);
            // Lowercase x is the same check character: the services upper-case
            // id numbers before storing or comparing them.
            for c in "0123456789XxYZ/:* ".chars() {
                let id = format!("{body}{c}");
                let want = date_ok && c.to_ascii_uppercase() == expected;
                prop_assert_eq!(is_valid_id_number(&id), want, "{}", id);
            }
            if date_ok {
                prop_assert_eq!(
                    birth_date_of(&format!("{body}{expected}")),
                    Some(format!("{:04}-{:02}-{:02}", y, m, d))
                );
            }
        }

        #[test]
        fn credit_code_accepts_exactly_its_check_character(body in "[0-9A-HJ-NP-RTUW-Y]{17}") {
            let expected = mod31(&body);
            prop_assert_eq!(
                credit_code_check_char(body.as_bytes()).map(char::from),
                Some(expected)
            );
            for c in ALPHABET.chars().chain("IOSVZa0-".chars()) {
                let code = format!("{body}{c}");
                prop_assert_eq!(is_valid_credit_code(&code), c == expected, "{}", code);
            }
        }

        #[test]
        fn credit_code_outside_the_alphabet_is_refused(
            body in "[0-9A-HJ-NP-RTUW-Y]{17}",
            at in 0usize..17,
            bad in "[IOSVZa-z\\-#中]",
        ) {
            let mut chars: Vec<char> = body.chars().collect();
            chars[at] = bad.chars().next().unwrap();
            let body: String = chars.into_iter().collect();
            prop_assert_eq!(credit_code_check_char(body.as_bytes()), None);
            for c in ALPHABET.chars() {
                let code = format!("{body}{c}");
                prop_assert!(!is_valid_credit_code(&code), "{}", code);
            }
        }

        #[test]
        fn identifier_checks_never_panic(s in any::<String>(), digits in "[0-9]{0,20}[^0-9]{0,3}") {
            for s in [s.as_str(), digits.as_str()] {
                let _ = is_valid_id_number(s);
                let _ = birth_date_of(s);
                let masked = mask_id_number(s);
                prop_assert_eq!(masked.chars().count(), s.chars().count());
                let _ = is_valid_credit_code(s);
                let _ = credit_code_check_char(s.as_bytes());
            }
        }

        #[test]
        fn masking_hides_the_birth_date(body in id_body()) {
            let id = format!("{body}{}", mod11_2(&body));
            let masked = mask_id_number(&id);
            prop_assert_eq!(masked.len(), 18);
            prop_assert_eq!(&masked[..6], &id[..6]);
            prop_assert_eq!(&masked[6..14], "********");
            prop_assert_eq!(&masked[14..], &id[14..]);
        }
    }

    #[test]
    fn multibyte_text_in_the_birth_date_window_is_no_date() {
        // Byte 10 falls inside the euro sign: slicing there used to panic.
        assert_eq!(birth_date_of("12345612€123456789"), None);
        assert!(!is_valid_id_number("12345612€1234567"));
    }
}
