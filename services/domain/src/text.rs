//! Human-entered names, free text, and accent-free search keys.
//!
//! Vietnamese text reaches us in two Unicode spellings (precomposed "ộ" and "o" followed by
//! combining marks, depending on the keyboard: Telex in Unikey, macOS, a phone) and with stray
//! whitespace from copy and paste. [`DisplayName`] keeps what people wrote but in one spelling
//! (NFC), so equal names compare equal. [`FreeText`] is the rule for every other text a person
//! types into a request (notes, reasons, addresses, descriptions): NFC, trimmed, bounded, and
//! free of the characters that cannot be shown or that make text display as something else.
//!
//! Officials search without accents ("ha noi" for "Hà Nội") and in any case; [`fold`] gives
//! the key both the stored text and the query are reduced to, and [`matches_query`] compares
//! them word by word, each query word matching the beginning of a word of the text.

use std::fmt;

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// A human-entered name: trimmed, inner whitespace runs collapsed to one space, NFC-normalised;
/// 1..=max chars (chars, after normalisation); no control characters.
///
/// Tabs and line breaks count as whitespace and are collapsed like spaces; other control
/// characters, and the bidirectional embedding, override and isolate controls that can make a
/// name display differently from what it is, are refused.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct DisplayName(String);

impl DisplayName {
    /// Normalises `input` and checks it is 1 to `max_chars` characters long.
    pub fn parse(input: &str, max_chars: usize) -> Result<DisplayName, TextError> {
        let nfc: String = input.nfc().collect();
        let collapsed = nfc.split_whitespace().collect::<Vec<_>>().join(" ");
        check_controls(&collapsed, Lines::One)?;
        let actual = collapsed.chars().count();
        if actual == 0 {
            return Err(TextError::Empty);
        }
        if actual > max_chars {
            return Err(TextError::TooLong { max: max_chars, actual });
        }
        Ok(DisplayName(collapsed))
    }

    /// The normalised name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The normalised name, owned.
    pub fn into_string(self) -> String {
        self.0
    }

    /// The accent-free search key of this name.
    pub fn folded(&self) -> String {
        fold(&self.0)
    }
}

impl fmt::Display for DisplayName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for DisplayName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// Whether a text field holds one line or several.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Lines {
    /// One line (names, numbers, addresses, contacts, references): no tab, no line break.
    One,
    /// Several lines (notes, reasons, descriptions, findings, narratives): tab and line feed
    /// are allowed; a CR LF pair is stored as LF.
    Many,
}

/// Free text a person typed into a request: NFC-normalised, leading and trailing whitespace
/// trimmed, at most `max` characters (after normalisation), and no character that cannot be
/// shown: NUL and the rest of C0, DEL, C1, and the bidirectional embedding, override and
/// isolate controls. Tab and line feed are allowed in [`Lines::Many`] text only. May be empty:
/// whether a field is required is the field's rule, not the text's.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct FreeText(String);

impl FreeText {
    /// Normalises `input` and checks its characters and its length.
    pub fn parse(input: &str, max_chars: usize, lines: Lines) -> Result<FreeText, TextError> {
        let mut nfc: String = input.nfc().collect();
        if lines == Lines::Many && nfc.contains("\r\n") {
            nfc = nfc.replace("\r\n", "\n");
        }
        let trimmed = nfc.trim();
        check_controls(trimmed, lines)?;
        let actual = trimmed.chars().count();
        if actual > max_chars {
            return Err(TextError::TooLong { max: max_chars, actual });
        }
        Ok(FreeText(trimmed.to_owned()))
    }

    /// The normalised text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The normalised text, owned.
    pub fn into_string(self) -> String {
        self.0
    }

    /// Whether nothing is left after trimming.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for FreeText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for FreeText {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// The first character of `text` that may not appear in text of `lines`, with its position.
fn check_controls(text: &str, lines: Lines) -> Result<(), TextError> {
    match text.chars().enumerate().find(|(_, c)| is_forbidden(*c, lines)) {
        Some((i, c)) => Err(TextError::ControlCharacter { code_point: c as u32, position: i + 1, lines }),
        None => Ok(()),
    }
}

fn is_forbidden(c: char, lines: Lines) -> bool {
    if lines == Lines::Many && matches!(c, '\t' | '\n') {
        return false;
    }
    c.is_control() || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Why a text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    /// Nothing but whitespace.
    #[error("is empty")]
    Empty,
    /// More characters than allowed, counted after normalisation.
    #[error("is {actual} characters long; at most {max} are allowed")]
    TooLong {
        /// The limit.
        max: usize,
        /// The length after normalisation.
        actual: usize,
    },
    /// A control character (other than tab and line feed in multi-line text), or a
    /// bidirectional formatting control.
    #[error(
        "contains U+{code_point:04X} at character {position}, a control character that cannot be shown{}",
        if *lines == Lines::Many { " (tab and line feed are allowed here)" } else { " (this field is a single line)" }
    )]
    ControlCharacter {
        /// The character refused.
        code_point: u32,
        /// Its position (from 1, in characters) in the normalised, trimmed text.
        position: usize,
        /// Whether the field was multi-line.
        lines: Lines,
    },
}

/// Accent-free search key: NFD, drop combining marks (Unicode general category Mn — use
/// unicode_normalization::char::is_combining_mark), map đ/Đ to d, lowercase, non-alphanumerics
/// become spaces, whitespace collapsed, trimmed. `fold("Hà Nội") == "ha noi"`;
/// `fold("Đà Nẵng") == "da nang"`; `fold("ĐÀ NẴNG") == "da nang"`.
///
/// Lower-casing happens before decomposition, so that the rare lower-case mappings that add a
/// combining mark (`İ` → `i̇`) lose it too and folding a folded key changes nothing.
pub fn fold(input: &str) -> String {
    let mut out = String::with_capacity(input.len());
    let mut pending_space = false;
    let lowered = input.to_lowercase();
    for c in lowered.nfd() {
        if is_combining_mark(c) {
            continue;
        }
        let c = if c == 'đ' { 'd' } else { c };
        if c.is_alphanumeric() {
            if pending_space && !out.is_empty() {
                out.push(' ');
            }
            pending_space = false;
            out.push(c);
        } else {
            pending_space = true;
        }
    }
    out
}

/// Whether every word of the folded query occurs, as a prefix of a word, in order-independent
/// fashion, in the folded text. `matches_query(&fold("Báo Hà Nội mới"), "ha noi")` is true;
/// `"hanoi"` does not match `"ha noi"`.
///
/// `folded_text` must already be [`fold`]ed (it is usually a stored key); the query is folded
/// here. A query with no words matches everything.
pub fn matches_query(folded_text: &str, query: &str) -> bool {
    let query = fold(query);
    query.split(' ').filter(|w| !w.is_empty()).all(|q| folded_text.split(' ').any(|word| word.starts_with(q)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn folding_removes_vietnamese_accents_and_case() {
        assert_eq!(fold("Hà Nội"), "ha noi");
        assert_eq!(fold("Đà Nẵng"), "da nang");
        assert_eq!(fold("ĐÀ NẴNG"), "da nang");
        assert_eq!(fold("Thừa Thiên Huế"), "thua thien hue");
        assert_eq!(fold("Bà Rịa – Vũng Tàu"), "ba ria vung tau");
        assert_eq!(fold("  Báo   điện-tử VnExpress.net!  "), "bao dien tu vnexpress net");
    }

    #[test]
    fn folding_treats_decomposed_and_precomposed_text_alike() {
        let decomposed: String = "Nguyễn Thị Ánh".nfd().collect();
        assert_eq!(fold(&decomposed), fold("Nguyễn Thị Ánh"));
        assert_eq!(fold(&decomposed), "nguyen thi anh");
    }

    #[test]
    fn a_query_matches_when_each_of_its_words_begins_a_word_of_the_text() {
        let text = fold("Báo Hà Nội mới");
        assert!(matches_query(&text, "ha noi"));
        assert!(matches_query(&text, "Nội Hà"), "order does not matter");
        assert!(matches_query(&text, "HÀ NỘ"), "a word may be a prefix");
        assert!(matches_query(&text, ""), "an empty query matches everything");
        assert!(!matches_query(&text, "hanoi"), "words are not joined");
        assert!(!matches_query(&text, "oi"), "a query word must begin a word");
        assert!(!matches_query(&text, "ha noi cu"), "every query word must occur");
    }

    #[test]
    fn a_display_name_is_trimmed_collapsed_and_composed() {
        let name = DisplayName::parse("  Báo \t Tuổi\u{00A0}\u{00A0}Trẻ \n", 100).unwrap();
        assert_eq!(name.as_str(), "Báo Tuổi Trẻ");
        assert_eq!(name.folded(), "bao tuoi tre");
        assert_eq!(name.into_string(), "Báo Tuổi Trẻ");
    }

    #[test]
    fn the_length_limit_counts_characters_after_composition() {
        let decomposed: String = "Việt".nfd().collect();
        assert!(decomposed.chars().count() > 4);
        assert_eq!(DisplayName::parse(&decomposed, 4).map(|n| n.into_string()), Ok("Việt".into()));
        assert_eq!(DisplayName::parse("Việt Nam", 4), Err(TextError::TooLong { max: 4, actual: 8 }));
    }

    fn control(code_point: u32, position: usize, lines: Lines) -> TextError {
        TextError::ControlCharacter { code_point, position, lines }
    }

    #[test]
    fn bad_display_names_are_refused_with_the_reason() {
        let cases: &[(&str, TextError, &str)] = &[
            ("", TextError::Empty, "nothing"),
            (" \t\n ", TextError::Empty, "only whitespace"),
            ("Báo\u{0007}", control(7, 4, Lines::One), "a bell character"),
            ("Báo\u{0000}mới", control(0, 4, Lines::One), "a NUL"),
            ("Báo \u{202E}iớm", control(0x202E, 5, Lines::One), "a right-to-left override"),
            ("Báo \u{2067}mới", control(0x2067, 5, Lines::One), "a right-to-left isolate"),
            ("Báo\u{007F}", control(0x7F, 4, Lines::One), "DEL"),
            ("Báo\u{009B}", control(0x9B, 4, Lines::One), "a C1 control (CSI)"),
        ];
        for (input, expected, reason) in cases {
            assert_eq!(DisplayName::parse(input, 50).as_ref(), Err(expected), "{reason}");
        }
    }

    #[test]
    fn multi_line_text_keeps_tabs_and_line_feeds_and_stores_crlf_as_lf() {
        let t = FreeText::parse("  Dòng một\r\n\tDòng hai\n", 100, Lines::Many).unwrap();
        assert_eq!(t.as_str(), "Dòng một\n\tDòng hai");
        let decomposed: String = "Ghi chú".nfd().collect();
        assert_eq!(FreeText::parse(&decomposed, 7, Lines::Many).unwrap().into_string(), "Ghi chú");
        assert!(FreeText::parse("   ", 10, Lines::Many).unwrap().is_empty(), "empty is the field's business");
    }

    #[test]
    fn bad_free_text_is_refused_with_the_character_and_its_position() {
        let cases: &[(&str, Lines, TextError, &str)] = &[
            ("ghi\u{0000}chú", Lines::Many, control(0, 4, Lines::Many), "a NUL in notes"),
            ("ghi\u{0000}chú", Lines::One, control(0, 4, Lines::One), "a NUL in an address"),
            ("a\rb", Lines::Many, control(0x0D, 2, Lines::Many), "a lone carriage return"),
            ("a\u{000B}b", Lines::Many, control(0x0B, 2, Lines::Many), "a vertical tab"),
            ("a\u{001B}[31mb", Lines::Many, control(0x1B, 2, Lines::Many), "an escape sequence"),
            ("a\u{0085}b", Lines::Many, control(0x85, 2, Lines::Many), "NEL (C1)"),
            ("a\u{202D}b", Lines::Many, control(0x202D, 2, Lines::Many), "a left-to-right override"),
            ("a\u{2066}b", Lines::Many, control(0x2066, 2, Lines::Many), "a left-to-right isolate"),
            ("số 1\tphố Huế", Lines::One, control(9, 5, Lines::One), "a tab in a single line"),
            ("số 1\nphố Huế", Lines::One, control(10, 5, Lines::One), "a line feed in a single line"),
        ];
        for (input, lines, expected, reason) in cases {
            assert_eq!(FreeText::parse(input, 100, *lines).as_ref(), Err(expected), "{reason}");
        }
        assert_eq!(FreeText::parse(" abcdef ", 5, Lines::One), Err(TextError::TooLong { max: 5, actual: 6 }));
        let message = FreeText::parse("ghi\u{0000}", 10, Lines::Many).unwrap_err().to_string();
        assert_eq!(
            message,
            "contains U+0000 at character 4, a control character that cannot be shown (tab and line feed are allowed here)"
        );
    }

    const VIETNAMESE_LOWER: &str =
        "abcdefghijklmnopqrstuvwxyzàáạảãâầấậẩẫăằắặẳẵèéẹẻẽêềếệểễìíịỉĩòóọỏõôồốộổỗơờớợởỡùúụủũưừứựửữỳýỵỷỹđ";

    fn vietnamese_text() -> impl Strategy<Value = String> {
        let mut letters: Vec<char> = VIETNAMESE_LOWER.chars().collect();
        letters.extend(VIETNAMESE_LOWER.chars().flat_map(char::to_uppercase).collect::<Vec<_>>());
        letters.extend([' ', ' ', '\t', '-', ',', '.', '0', '9']);
        proptest::collection::vec(proptest::sample::select(letters), 0..40).prop_map(|cs| cs.into_iter().collect())
    }

    proptest! {
        #[test]
        fn folding_is_idempotent(text in prop_oneof![vietnamese_text(), any::<String>()]) {
            let once = fold(&text);
            prop_assert_eq!(fold(&once), once);
        }

        #[test]
        fn folded_vietnamese_is_ascii(text in vietnamese_text()) {
            let folded = fold(&text);
            prop_assert!(folded.is_ascii(), "{:?} folded to {:?}", text, folded);
        }

        #[test]
        fn decomposed_and_composed_input_give_the_same_display_name(
            text in prop_oneof![vietnamese_text(), any::<String>()]
        ) {
            let nfd: String = text.nfd().collect();
            let nfc: String = text.nfc().collect();
            prop_assert_eq!(DisplayName::parse(&nfd, 30), DisplayName::parse(&nfc, 30));
        }

        #[test]
        fn free_text_is_ok_and_clean_or_refused_with_a_typed_error(
            text in prop_oneof![vietnamese_text(), any::<String>(), "[\\x00-\\x20a\\u{85}\\u{202E}\\u{2066}\\r\\n\\t]{0,12}"],
            max in 0usize..40,
            many in any::<bool>(),
        ) {
            let lines = if many { Lines::Many } else { Lines::One };
            match FreeText::parse(&text, max, lines) {
                Ok(t) => {
                    let s = t.as_str();
                    prop_assert!(s.chars().count() <= max);
                    prop_assert_eq!(s.trim(), s);
                    prop_assert!(unicode_normalization::is_nfc(s));
                    prop_assert!(!s.chars().any(|c| is_forbidden(c, lines)), "{:?}", s);
                    prop_assert_eq!(FreeText::parse(s, max, lines), Ok(t.clone()), "parsing is idempotent");
                }
                Err(TextError::ControlCharacter { code_point, position, lines: l }) => {
                    prop_assert_eq!(l, lines);
                    let c = char::from_u32(code_point).expect("a character");
                    prop_assert!(is_forbidden(c, lines));
                    prop_assert!(position >= 1);
                }
                Err(TextError::TooLong { max: m, actual }) => prop_assert!(m == max && actual > max),
                Err(TextError::Empty) => prop_assert!(false, "free text may be empty"),
            }
        }

        #[test]
        fn a_display_name_is_ok_and_clean_or_refused_with_a_typed_error(
            text in prop_oneof![vietnamese_text(), any::<String>()],
            max in 0usize..40,
        ) {
            match DisplayName::parse(&text, max) {
                Ok(n) => {
                    let s = n.as_str();
                    prop_assert!(!s.is_empty() && s.chars().count() <= max);
                    prop_assert!(!s.chars().any(|c| is_forbidden(c, Lines::One)), "{:?}", s);
                    prop_assert_eq!(DisplayName::parse(s, max), Ok(n.clone()), "parsing is idempotent");
                }
                Err(TextError::ControlCharacter { code_point, .. }) => {
                    prop_assert!(char::from_u32(code_point).is_some_and(|c| is_forbidden(c, Lines::One)));
                }
                Err(TextError::TooLong { max: m, actual }) => prop_assert!(m == max && actual > max),
                Err(TextError::Empty) => prop_assert!(text.trim().is_empty() || text.chars().all(char::is_whitespace)),
            }
        }

        #[test]
        fn a_folded_text_matches_every_query_made_of_its_own_words(text in vietnamese_text()) {
            let folded = fold(&text);
            prop_assert!(matches_query(&folded, &text));
        }
    }
}
