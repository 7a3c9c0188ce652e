//! STIX patterns: building them from typed values, and checking their syntax.
//!
//! In a pattern string literal only `\'` and `\\` are legal escapes (grammar `StringLiteral`), so
//! escaping is: backslashes first, then single quotes. Everything else, newlines and any Unicode
//! included, stays as it is.

use ctiport_model::record::ObservableType;

/// Escapes `value` for use inside a single-quoted pattern string literal.
pub fn escape_literal(value: &str) -> String {
    value.replace('\\', "\\\\").replace('\'', "\\'")
}

/// The STIX object path an observable type is matched on, and the comparison operator.
fn path_and_operator(observable: ObservableType) -> (&'static str, &'static str) {
    match observable {
        ObservableType::Domain => ("domain-name:value", "="),
        ObservableType::Ipv4 => ("ipv4-addr:value", "="),
        ObservableType::Ipv6 => ("ipv6-addr:value", "="),
        // `=` is plain string equality; "address inside this range" is ISSUBSET (STIX §9.6.1).
        ObservableType::Ipv4Cidr => ("ipv4-addr:value", "ISSUBSET"),
        ObservableType::Ipv6Cidr => ("ipv6-addr:value", "ISSUBSET"),
        ObservableType::Url => ("url:value", "="),
        ObservableType::Email => ("email-addr:value", "="),
        ObservableType::Md5 => ("file:hashes.MD5", "="),
        ObservableType::Sha1 => ("file:hashes.'SHA-1'", "="),
        ObservableType::Sha256 => ("file:hashes.'SHA-256'", "="),
        ObservableType::Sha512 => ("file:hashes.'SHA-512'", "="),
        ObservableType::X509Sha1 => ("x509-certificate:hashes.'SHA-1'", "="),
    }
}

/// The pattern matching one normalized value of one observable type.
pub fn pattern_for(observable: ObservableType, value: &str) -> String {
    let (path, operator) = path_and_operator(observable);
    format!("[{path} {operator} '{}']", escape_literal(value))
}

/// A syntax error in a pattern, with the byte offset where it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternError {
    pub offset: usize,
    pub message: String,
}

impl std::fmt::Display for PatternError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "at offset {}: {}", self.offset, self.message)
    }
}

/// Checks a pattern against the STIX 2.1 pattern grammar and returns the string literals it
/// compares against (unescaped), in order. This is ctiport's own check for `ctiport validate`; the
/// OASIS `stix2-patterns` validator remains the oracle in the test suite.
pub fn check_pattern(pattern: &str) -> Result<Vec<String>, PatternError> {
    let mut parser = Parser {
        text: pattern,
        pos: 0,
        literals: Vec::new(),
    };
    parser.observation_expressions()?;
    parser.skip_space();
    if parser.pos != pattern.len() {
        return Err(parser.error("unexpected text after the pattern"));
    }
    Ok(parser.literals)
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
    literals: Vec<String>,
}

const COMPARISON_OPERATORS: [&str; 6] = ["<=", ">=", "!=", "=", "<", ">"];
const WORD_OPERATORS: [&str; 5] = ["IN", "LIKE", "MATCHES", "ISSUBSET", "ISSUPERSET"];

impl Parser<'_> {
    fn error(&self, message: &str) -> PatternError {
        PatternError {
            offset: self.pos,
            message: message.to_owned(),
        }
    }

    fn rest(&self) -> &str {
        &self.text[self.pos..]
    }

    fn skip_space(&mut self) {
        let trimmed = self.rest().trim_start();
        self.pos = self.text.len() - trimmed.len();
    }

    fn eat(&mut self, token: &str) -> bool {
        self.skip_space();
        if self.rest().starts_with(token) {
            self.pos += token.len();
            true
        } else {
            false
        }
    }

    /// Eats a keyword only when it is a whole word.
    fn eat_keyword(&mut self, keyword: &str) -> bool {
        self.skip_space();
        // Only after `starts_with` is `keyword.len()` known to be a character boundary.
        let whole_word = self.rest().strip_prefix(keyword).is_some_and(|after| {
            after
                .chars()
                .next()
                .is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '_'))
        });
        if whole_word {
            self.pos += keyword.len();
            true
        } else {
            false
        }
    }

    fn observation_expressions(&mut self) -> Result<(), PatternError> {
        self.observation_expression()?;
        while self.eat_keyword("AND") || self.eat_keyword("OR") || self.eat_keyword("FOLLOWEDBY") {
            self.observation_expression()?;
        }
        Ok(())
    }

    fn observation_expression(&mut self) -> Result<(), PatternError> {
        if self.eat("(") {
            self.observation_expressions()?;
            if !self.eat(")") {
                return Err(self.error("expected ')'"));
            }
        } else if self.eat("[") {
            self.comparison_expression()?;
            if !self.eat("]") {
                return Err(self.error("expected ']'"));
            }
        } else {
            return Err(self.error("expected '[' or '(' (patterns need square brackets)"));
        }
        self.qualifiers()
    }

    fn qualifiers(&mut self) -> Result<(), PatternError> {
        loop {
            if self.eat_keyword("WITHIN") {
                self.number()?;
                if !self.eat_keyword("SECONDS") {
                    return Err(self.error("expected SECONDS"));
                }
            } else if self.eat_keyword("REPEATS") {
                self.number()?;
                if !self.eat_keyword("TIMES") {
                    return Err(self.error("expected TIMES"));
                }
            } else if self.eat_keyword("START") {
                self.prefixed_literal('t')?;
                if !self.eat_keyword("STOP") {
                    return Err(self.error("expected STOP"));
                }
                self.prefixed_literal('t')?;
            } else {
                return Ok(());
            }
        }
    }

    fn comparison_expression(&mut self) -> Result<(), PatternError> {
        self.comparison_term()?;
        while self.eat_keyword("AND") || self.eat_keyword("OR") {
            self.comparison_term()?;
        }
        Ok(())
    }

    fn comparison_term(&mut self) -> Result<(), PatternError> {
        if self.eat("(") {
            self.comparison_expression()?;
            return if self.eat(")") {
                Ok(())
            } else {
                Err(self.error("expected ')'"))
            };
        }
        if self.eat_keyword("EXISTS") {
            return self.object_path();
        }
        self.object_path()?;
        self.eat_keyword("NOT");
        self.skip_space();
        if let Some(op) = COMPARISON_OPERATORS
            .iter()
            .find(|op| self.rest().starts_with(**op))
        {
            self.pos += op.len();
            return self.literal();
        }
        for word in WORD_OPERATORS {
            if self.eat_keyword(word) {
                return if word == "IN" {
                    self.set_literal()
                } else {
                    self.literal()
                };
            }
        }
        Err(self.error("expected a comparison operator"))
    }

    fn object_path(&mut self) -> Result<(), PatternError> {
        self.skip_space();
        let object_type_len = self
            .rest()
            .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_'))
            .unwrap_or(self.rest().len());
        if object_type_len == 0 {
            return Err(self.error("expected an object type"));
        }
        self.pos += object_type_len;
        if !self.rest().starts_with(':') {
            return Err(self.error("expected ':' after the object type"));
        }
        self.pos += 1;
        self.path_component()?;
        loop {
            if self.rest().starts_with('.') {
                self.pos += 1;
                self.path_component()?;
            } else if self.rest().starts_with('[') {
                self.pos += 1;
                if !(self.eat("*") || self.number().is_ok()) || !self.eat("]") {
                    return Err(self.error("expected a list index"));
                }
            } else {
                return Ok(());
            }
        }
    }

    fn path_component(&mut self) -> Result<(), PatternError> {
        if self.rest().starts_with('\'') {
            // A quoted key such as 'SHA-256' is part of the path, not a compared value.
            self.string_literal()?;
            self.literals.pop();
            return Ok(());
        }
        let len = self
            .rest()
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(self.rest().len());
        if len == 0 {
            return Err(self.error("expected a property name"));
        }
        self.pos += len;
        Ok(())
    }

    fn number(&mut self) -> Result<(), PatternError> {
        self.skip_space();
        let rest = self.rest();
        let sign = usize::from(rest.starts_with('-') || rest.starts_with('+'));
        let digits = rest[sign..]
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len() - sign);
        if digits == 0 {
            return Err(self.error("expected a number"));
        }
        self.pos += sign + digits;
        Ok(())
    }

    fn string_literal(&mut self) -> Result<(), PatternError> {
        if !self.rest().starts_with('\'') {
            return Err(self.error("expected a single-quoted string"));
        }
        let start = self.pos;
        self.pos += 1;
        let mut value = String::new();
        let mut chars = self.rest().char_indices();
        while let Some((offset, c)) = chars.next() {
            match c {
                '\'' => {
                    self.pos += offset + 1;
                    self.literals.push(value);
                    return Ok(());
                }
                '\\' => match chars.next() {
                    Some((_, escaped @ ('\'' | '\\'))) => value.push(escaped),
                    _ => {
                        self.pos += offset;
                        return Err(
                            self.error("only \\' and \\\\ are valid escapes in a string literal")
                        );
                    }
                },
                other => value.push(other),
            }
        }
        self.pos = start;
        Err(self.error("unterminated string literal"))
    }

    /// `t'…'`, `h'…'` or `b'…'`.
    fn prefixed_literal(&mut self, prefix: char) -> Result<(), PatternError> {
        self.skip_space();
        if !self.rest().starts_with(prefix) {
            return Err(self.error("expected a typed literal"));
        }
        self.pos += 1;
        self.string_literal()?;
        self.literals.pop();
        Ok(())
    }

    fn literal(&mut self) -> Result<(), PatternError> {
        self.skip_space();
        let rest = self.rest();
        if rest.starts_with('\'') {
            self.string_literal()
        } else if let Some(prefix) = ['t', 'h', 'b']
            .into_iter()
            .find(|p| rest.starts_with(&format!("{p}'")))
        {
            self.prefixed_literal(prefix)
        } else if self.eat_keyword("true") || self.eat_keyword("false") {
            Ok(())
        } else {
            self.number()
        }
    }

    fn set_literal(&mut self) -> Result<(), PatternError> {
        if !self.eat("(") {
            return Err(self.error("expected '(' to start a set"));
        }
        if self.eat(")") {
            return Ok(());
        }
        loop {
            self.literal()?;
            if self.eat(")") {
                return Ok(());
            }
            if !self.eat(",") {
                return Err(self.error("expected ',' or ')' in a set"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn escapes_backslashes_before_quotes() {
        assert_eq!(escape_literal(r"it's\a'path"), r"it\'s\\a\'path");
        assert_eq!(escape_literal(r"C:\Windows\x.exe"), r"C:\\Windows\\x.exe");
        assert_eq!(escape_literal(r"\'"), r"\\\'");
    }

    #[test]
    fn builds_the_reference_templates() {
        assert_eq!(
            pattern_for(ObservableType::Ipv4Cidr, "203.0.113.0/24"),
            "[ipv4-addr:value ISSUBSET '203.0.113.0/24']"
        );
        assert_eq!(
            pattern_for(
                ObservableType::Url,
                "http://evil.example.com/it's\\a'path?q=1"
            ),
            r"[url:value = 'http://evil.example.com/it\'s\\a\'path?q=1']"
        );
        assert_eq!(
            pattern_for(
                ObservableType::X509Sha1,
                "0123456789abcdef0123456789abcdef01234567"
            ),
            "[x509-certificate:hashes.'SHA-1' = '0123456789abcdef0123456789abcdef01234567']"
        );
        assert_eq!(
            pattern_for(ObservableType::Md5, "d41d8cd98f00b204e9800998ecf8427e"),
            "[file:hashes.MD5 = 'd41d8cd98f00b204e9800998ecf8427e']"
        );
    }

    #[test]
    fn accepts_valid_patterns() {
        for pattern in [
            "[ipv4-addr:value IN ('198.51.100.7', '198.51.100.8')]",
            "[network-traffic:dst_ref.type = 'ipv4-addr' AND network-traffic:dst_port = 443]",
            "[domain-name:value = 'evil.example.com'] START t'2024-01-01T00:00:00Z' STOP t'2024-02-01T00:00:00Z'",
            "([ipv4-addr:value = 'a'] OR [domain-name:value = 'b']) WITHIN 300 SECONDS",
            "[file:hashes.'SHA-256' = 'aa' AND file:name NOT LIKE '%.exe']",
            "[process:extensions.'windows-process-ext'.aslr_enabled = true]",
            "[email-message:to_refs[*].value = 'a@b.c']",
        ] {
            assert!(
                check_pattern(pattern).is_ok(),
                "{pattern}: {:?}",
                check_pattern(pattern)
            );
        }
    }

    #[test]
    fn rejects_the_classic_mistakes() {
        for pattern in [
            "[url:value = 'http://evil.example.com/it's']",
            r"[url:value = 'bad\escape']",
            "[url:value = \"double\"]",
            "url:value = 'x'",
            "[url:value = 'unterminated]",
            "[url:value 'x']",
            "[ipv4-addr:value = '1.2.3.4'] trailing",
        ] {
            assert!(check_pattern(pattern).is_err(), "{pattern} should fail");
        }
    }

    proptest! {
        /// Whatever the value, the built pattern parses and yields exactly that value back.
        #[test]
        fn escaped_values_roundtrip_through_the_grammar(value in ".*") {
            for observable in ObservableType::ALL {
                let pattern = pattern_for(observable, &value);
                prop_assert_eq!(check_pattern(&pattern), Ok(vec![value.clone()]), "{}", pattern);
            }
        }

        #[test]
        fn escaping_never_leaves_a_lone_quote(value in "['\\\\a]{0,12}") {
            let escaped = escape_literal(&value);
            let mut backslashes = 0usize;
            for c in escaped.chars() {
                if c == '\'' {
                    prop_assert!(backslashes % 2 == 1, "{}", escaped);
                }
                backslashes = if c == '\\' { backslashes + 1 } else { 0 };
            }
        }

        #[test]
        fn checker_never_panics(pattern in ".*") {
            let _ = check_pattern(&pattern);
        }
    }
}
