//! Plain data about workers, filled in by `probe` and `ssh`, read by
//! `plan` and `render`: no I/O here.
//!
//! - `fault`: why a worker could not be used, and its stable reason code.
//! - `stats`: a distccd `--stats` reply, parsed with bounds.
//! - `found`: how a worker is reached and what its probe found.

pub mod fault;
pub mod found;
pub mod stats;

/// Text that came from the network (a compiler's `.comment`, a worker's
/// error output, what ssh relays from the far side), as it may be shown
/// to a person: control and bidirectional-format characters escaped
/// (`\u{1b}`), so that no byte of it moves the cursor, rings, starts a
/// line of its own or reorders what follows; at most `max` characters.
pub fn shown(text: &str, max: usize) -> String {
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        if i == max {
            out.push_str("...");
            break;
        }
        let bidi = matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
        if c.is_control() || bidi {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn shown_text_holds_no_control_character() {
        let s = super::shown("a\x1b[2K\rb\nc\x07\u{202e}d\u{9b}", 100);
        assert_eq!(s, "a\\u{1b}[2K\\u{d}b\\u{a}c\\u{7}\\u{202e}d\\u{9b}");
        assert!(!s.chars().any(char::is_control));
        assert_eq!(super::shown("abcdef", 3), "abc...");
    }
}
