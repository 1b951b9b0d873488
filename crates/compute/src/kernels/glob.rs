//! Glob patterns compiled to the token program the name-match kernel runs: `*`, `?`,
//! `[...]`, `[!...]`/`[^...]` with ranges and POSIX classes, `\` escapes, with the
//! semantics of `fnmatch(3)` without flags (what `find -name` uses) in the C locale:
//! bytes, not characters. With `fold`, ASCII case is ignored (`find -iname`).

use crate::error::ComputeError;

pub const LITERAL: u32 = 0;
pub const ANY: u32 = 1;
pub const STAR: u32 = 2;
pub const CLASS: u32 = 3;

/// Most tokens a glob may have.
pub const MAX_TOKENS: usize = 4096;

/// A compiled glob: tokens (`kind << 24 | arg`) and 256-bit class sets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GlobProgram {
    pub tokens: Vec<u32>,
    pub classes: Vec<[u32; 8]>,
    pub fold: bool,
}

fn set_bit(set: &mut [u32; 8], b: u8) {
    set[usize::from(b >> 5)] |= 1 << (b & 31);
}

fn posix_class(name: &[u8]) -> Option<fn(u8) -> bool> {
    Some(match name {
        b"alpha" => |b: u8| b.is_ascii_alphabetic(),
        b"digit" => |b: u8| b.is_ascii_digit(),
        b"alnum" => |b: u8| b.is_ascii_alphanumeric(),
        b"upper" => |b: u8| b.is_ascii_uppercase(),
        b"lower" => |b: u8| b.is_ascii_lowercase(),
        b"space" => |b: u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c),
        b"blank" => |b: u8| b == b' ' || b == b'\t',
        b"punct" => |b: u8| b.is_ascii_punctuation(),
        b"xdigit" => |b: u8| b.is_ascii_hexdigit(),
        b"cntrl" => |b: u8| b.is_ascii_control(),
        b"print" => |b: u8| (0x20..0x7f).contains(&b),
        b"graph" => |b: u8| b.is_ascii_graphic(),
        _ => return None,
    })
}

/// Parses the bracket expression starting after `[` at `pat[i]`; returns the set and
/// the index after `]`, or `None` when it is not terminated (then `[` is literal).
fn bracket(
    pat: &[u8],
    mut i: usize,
    fold: bool,
) -> Result<Option<([u32; 8], usize)>, ComputeError> {
    let mut set = [0u32; 8];
    let negate = matches!(pat.get(i), Some(b'!' | b'^'));
    if negate {
        i += 1;
    }
    let mut first = true;
    loop {
        let Some(&c) = pat.get(i) else {
            return Ok(None);
        };
        if c == b']' && !first {
            i += 1;
            break;
        }
        first = false;
        // [:class:], [=c=], [.c.]
        if let Some(next) = bracket_class(pat, i, &mut set)? {
            i = next;
            continue;
        }
        let lo = if c == b'\\' {
            i += 1;
            match pat.get(i) {
                Some(&e) => e,
                None => return Ok(None),
            }
        } else {
            c
        };
        i += 1;
        // A range lo-hi, unless '-' is last before ']'.
        if pat.get(i) == Some(&b'-') && pat.get(i + 1).is_some_and(|&n| n != b']') {
            let mut hi = pat[i + 1];
            i += 2;
            if hi == b'\\' {
                match pat.get(i) {
                    Some(&e) => {
                        hi = e;
                        i += 1;
                    }
                    None => return Ok(None),
                }
            }
            for b in lo..=hi.max(lo) {
                if b <= hi {
                    set_bit(&mut set, b);
                }
            }
        } else {
            set_bit(&mut set, lo);
        }
    }
    close_set(&mut set, fold, negate);
    Ok(Some((set, i)))
}

/// Parses a `[:class:]`, `[=c=]` or `[.c.]` at `pat[i]` inside a bracket expression into
/// `set`; the index after it, or `None` when there is none there.
fn bracket_class(pat: &[u8], i: usize, set: &mut [u32; 8]) -> Result<Option<usize>, ComputeError> {
    let delim = match (pat.get(i), pat.get(i + 1)) {
        (Some(b'['), Some(&d @ (b':' | b'=' | b'.'))) => d,
        _ => return Ok(None),
    };
    let body_start = i + 2;
    let Some(len) = pat[body_start..]
        .windows(2)
        .position(|w| w[0] == delim && w[1] == b']')
    else {
        return Ok(None);
    };
    let body = &pat[body_start..body_start + len];
    if delim == b':' {
        let Some(f) = posix_class(body) else {
            return Err(ComputeError::BadQuery(format!(
                "unknown character class [:{}:]",
                String::from_utf8_lossy(body)
            )));
        };
        for b in (0..=255u8).filter(|&b| f(b)) {
            set_bit(set, b);
        }
    } else if let [b] = body {
        set_bit(set, *b);
    } else {
        return Err(ComputeError::BadQuery(
            "only single-byte [= =] and [. .] are supported".into(),
        ));
    }
    Ok(Some(body_start + len + 2))
}

/// Closes a parsed bracket set under ASCII case when folding, then negates it when asked:
/// case closure comes first, so with folding `[!x]` excludes both 'x' and 'X'.
fn close_set(set: &mut [u32; 8], fold: bool, negate: bool) {
    if fold {
        for b in 0..=255u8 {
            if set[usize::from(b >> 5)] >> (b & 31) & 1 == 1 {
                set_bit(set, b.to_ascii_lowercase());
                set_bit(set, b.to_ascii_uppercase());
            }
        }
    }
    if negate {
        for w in set.iter_mut() {
            *w = !*w;
        }
    }
}

/// Compiles `pat`; `fold` ignores ASCII case.
pub fn compile(pat: &[u8], fold: bool) -> Result<GlobProgram, ComputeError> {
    if pat.is_empty() {
        return Err(ComputeError::BadQuery("empty pattern".into()));
    }
    let lower = |b: u8| if fold { b.to_ascii_lowercase() } else { b };
    let mut tokens = Vec::new();
    let mut classes: Vec<[u32; 8]> = Vec::new();
    let mut i = 0;
    while i < pat.len() {
        let c = pat[i];
        match c {
            b'*' => {
                // Consecutive stars are one.
                if tokens.last().map(|t| t >> 24) != Some(STAR) {
                    tokens.push(STAR << 24);
                }
                i += 1;
            }
            b'?' => {
                tokens.push(ANY << 24);
                i += 1;
            }
            b'[' => match bracket(pat, i + 1, fold)? {
                Some((set, next)) => {
                    tokens.push(CLASS << 24 | classes.len() as u32);
                    classes.push(set);
                    i = next;
                }
                None => {
                    tokens.push(LITERAL << 24 | u32::from(b'['));
                    i += 1;
                }
            },
            b'\\' if i + 1 < pat.len() => {
                tokens.push(LITERAL << 24 | u32::from(lower(pat[i + 1])));
                i += 2;
            }
            _ => {
                tokens.push(LITERAL << 24 | u32::from(lower(c)));
                i += 1;
            }
        }
        if tokens.len() > MAX_TOKENS {
            return Err(ComputeError::BadQuery(format!(
                "glob longer than {MAX_TOKENS} tokens"
            )));
        }
    }
    Ok(GlobProgram {
        tokens,
        classes,
        fold,
    })
}

impl GlobProgram {
    fn token_matches(&self, tok: u32, b: u8) -> bool {
        match tok >> 24 {
            ANY => true,
            LITERAL => {
                let b = if self.fold { b.to_ascii_lowercase() } else { b };
                u32::from(b) == tok & 0xff
            }
            _ => {
                let set = &self.classes[(tok & 0xff_ffff) as usize];
                set[usize::from(b >> 5)] >> (b & 31) & 1 == 1
            }
        }
    }

    /// Does `name` match? The same loop as `glob()` in kernels/name_match.wgsl.
    /// The glob as one literal at a fixed place, when it is no more than that: `lit`,
    /// `lit*`, `*lit` or `*lit*` (literal lowercase when `fold`).
    pub fn as_anchored_literal(&self) -> Option<(Vec<u8>, super::name_scan::Anchor)> {
        use super::name_scan::Anchor;
        let t = &self.tokens;
        let star = |i: usize| t.get(i).is_some_and(|&x| x >> 24 == STAR);
        let lead = usize::from(star(0));
        let trail = usize::from(t.len() > lead && star(t.len() - 1));
        let body = t.get(lead..t.len() - trail)?;
        if body.is_empty() || body.iter().any(|&x| x >> 24 != LITERAL) {
            return None;
        }
        let lit = body.iter().map(|&x| (x & 0xff) as u8).collect();
        let anchor = match (lead, trail) {
            (0, 0) => Anchor::Whole,
            (0, _) => Anchor::Start,
            (_, 0) => Anchor::End,
            _ => Anchor::Anywhere,
        };
        Some((lit, anchor))
    }

    /// The longest run of literal bytes: every matching name contains it (ASCII case
    /// ignored when `fold`; then it is lowercase).
    pub fn longest_literal(&self) -> Vec<u8> {
        let mut best: Vec<u8> = Vec::new();
        let mut run: Vec<u8> = Vec::new();
        for &t in &self.tokens {
            if t >> 24 == LITERAL {
                run.push((t & 0xff) as u8);
            } else {
                run.clear();
            }
            if run.len() > best.len() {
                best.clone_from(&run);
            }
        }
        best
    }

    pub fn matches(&self, name: &[u8]) -> bool {
        let t = &self.tokens;
        let (mut p, mut n) = (0usize, 0usize);
        let mut star: Option<(usize, usize)> = None;
        while n < name.len() {
            if p < t.len() {
                if t[p] >> 24 == STAR {
                    star = Some((p, n));
                    p += 1;
                    continue;
                }
                if self.token_matches(t[p], name[n]) {
                    p += 1;
                    n += 1;
                    continue;
                }
            }
            match star {
                Some((sp, sn)) => {
                    p = sp + 1;
                    n = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            }
        }
        while p < t.len() && t[p] >> 24 == STAR {
            p += 1;
        }
        p == t.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, n: &str) -> bool {
        compile(p.as_bytes(), false).is_ok_and(|g| g.matches(n.as_bytes()))
    }

    #[test]
    fn fnmatch_cases() {
        assert!(m("*.rs", "main.rs"));
        assert!(!m("*.rs", "main.rsx"));
        assert!(m("a*b*c", "aXXbYYc"));
        assert!(!m("a*b*c", "aXXbYY"));
        assert!(m("?", "x"));
        assert!(!m("?", "xy"));
        assert!(m("[abc]x", "bx"));
        assert!(m("[!abc]x", "dx"));
        assert!(!m("[!abc]x", "ax"));
        assert!(m("[^a]", "b"));
        assert!(m("[a-c]", "b"));
        assert!(m("[]a]", "]"));
        assert!(m("[a-]", "-"));
        assert!(m("[[:digit:]]x", "7x"));
        assert!(!m("[[:digit:]]x", "ax"));
        assert!(m("\\*", "*"));
        assert!(!m("\\*", "a"));
        assert!(m("[", "["));
        assert!(m("a[", "a["));
        assert!(m("*", ".hidden"));
        assert!(m("**", ""));
        assert!(!m("a", ""));
        assert!(m("[\\]]", "]"));
        assert!(compile(b"[[:nope:]]", false).is_err());
        assert!(compile(b"*.JPG", true).is_ok_and(|g| g.matches(b"photo.jpg")));
        assert!(compile(b"[A-C]*", true).is_ok_and(|g| g.matches(b"bee")));
        assert!(!compile(b"[!x]", true).is_ok_and(|g| g.matches(b"X")));
    }
}
