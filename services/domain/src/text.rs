//! Human-entered names and accent-free search keys.
//!
//! Vietnamese text reaches us in two Unicode spellings (precomposed "ộ" and "o" followed by
//! combining marks, depending on the keyboard: Telex in Unikey, macOS, a phone) and with stray
//! whitespace from copy and paste. [`DisplayName`] keeps what people wrote but in one spelling
//! (NFC), so equal names compare equal.
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
        if collapsed.chars().any(is_forbidden_control) {
            return Err(TextError::ControlCharacter);
        }
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

fn is_forbidden_control(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    /// Nothing but whitespace.
    #[error("the name is empty")]
    Empty,
    /// More characters than allowed, counted after normalisation.
    #[error("the name is {actual} characters long; at most {max} are allowed")]
    TooLong {
        /// The limit.
        max: usize,
        /// The length after normalisation.
        actual: usize,
    },
    /// A control character other than whitespace, or a bidirectional formatting control.
    #[error("the name contains a control character (or a bidirectional formatting control), which cannot be shown")]
    ControlCharacter,
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

    #[test]
    fn bad_display_names_are_refused_with_the_reason() {
        let cases: &[(&str, TextError, &str)] = &[
            ("", TextError::Empty, "nothing"),
            (" \t\n ", TextError::Empty, "only whitespace"),
            ("Báo\u{0007}", TextError::ControlCharacter, "a bell character"),
            ("Báo\u{0000}mới", TextError::ControlCharacter, "a NUL"),
            ("Báo \u{202E}iớm", TextError::ControlCharacter, "a right-to-left override"),
            ("Báo \u{2067}mới", TextError::ControlCharacter, "a right-to-left isolate"),
        ];
        for (input, expected, reason) in cases {
            assert_eq!(DisplayName::parse(input, 50).as_ref(), Err(expected), "{reason}");
        }
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
        fn a_folded_text_matches_every_query_made_of_its_own_words(text in vietnamese_text()) {
            let folded = fold(&text);
            prop_assert!(matches_query(&folded, &text));
        }
    }
}
