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
