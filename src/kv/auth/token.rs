//! [`AuthToken`]: the shared secret, compared in constant time.

use bytes::Bytes;
use std::fmt;
use std::io::{self, Read};
use std::path::Path;
use subtle::ConstantTimeEq;

/// The largest token file [`AuthToken::from_file`] reads: a token is one
/// short line, and a path given by mistake (a log, `/dev/zero`) must fail at
/// once rather than be read into memory.
const MAX_TOKEN_FILE: usize = 4096;

/// An `AUTH` token: any non-empty bytes. Its `Debug` shows no byte of it.
///
/// [`matches`](Self::matches) compares in constant time (the `subtle`
/// crate): how long a comparison takes says nothing about how many leading
/// bytes of a guess were right. It does depend on whether the lengths
/// differ, so prefer long random tokens (32 bytes or more) whose length is
/// no secret.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthToken(Bytes);

/// A token must not be empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the token is empty")]
pub struct EmptyToken;

impl AuthToken {
    /// A token of these bytes; fails if there are none.
    pub fn new(token: impl Into<Bytes>) -> Result<Self, EmptyToken> {
        let token = token.into();
        if token.is_empty() {
            return Err(EmptyToken);
        }
        Ok(AuthToken(token))
    }

    /// A token as a file or an environment variable holds it: `text`
    /// without trailing line breaks and spaces; fails if nothing is left.
    pub fn from_text(text: impl Into<Vec<u8>>) -> Result<Self, EmptyToken> {
        let mut text = text.into();
        let end = text
            .iter()
            .rposition(|b| !b.is_ascii_whitespace())
            .map_or(0, |last| last + 1);
        text.truncate(end);
        AuthToken::new(text)
    }

    /// How many bytes the token has.
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    /// Reads a token from a file, once, as [`from_text`](Self::from_text)
    /// trims it. A missing, unreadable, empty or too large file (over
    /// 4 KiB: `/dev/zero` is refused at once, not read
    /// until memory runs out) is an error (kind `NotFound`, ..., or
    /// `InvalidData` for an empty or too large one), with the path in its
    /// message.
    pub fn from_file(path: impl AsRef<Path>) -> io::Result<Self> {
        let path = path.as_ref();
        let unreadable = |e: io::Error| {
            io::Error::new(
                e.kind(),
                format!("cannot read the token file {}: {e}", path.display()),
            )
        };
        let file = std::fs::File::open(path).map_err(unreadable)?;
        let mut content = Vec::new();
        file.take(MAX_TOKEN_FILE as u64 + 1)
            .read_to_end(&mut content)
            .map_err(unreadable)?;
        if content.len() > MAX_TOKEN_FILE {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "the token file {} is larger than {MAX_TOKEN_FILE} bytes: is it the right file? \
                     A token is one line (32 random bytes, e.g. `head -c 32 /dev/urandom | base64`)",
                    path.display()
                ),
            ));
        }
        AuthToken::from_text(content).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("the token file {} is empty", path.display()),
            )
        })
    }

    /// `true` if `candidate` is this token, compared in constant time.
    pub fn matches(&self, candidate: &[u8]) -> bool {
        bool::from(self.0.as_ref().ct_eq(candidate))
    }

    /// The token's bytes, as sent in `AUTH`.
    pub fn as_bytes(&self) -> &Bytes {
        &self.0
    }
}

impl fmt::Debug for AuthToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AuthToken({} bytes, redacted)", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_only_the_same_bytes() {
        let token = AuthToken::new("correct horse").unwrap();
        assert!(token.matches(b"correct horse"));
        for wrong in [
            &b""[..],
            b"correct hors",
            b"correct horse ",
            b"Correct horse",
            b"xorrect horse",
        ] {
            assert!(!token.matches(wrong), "{wrong:?}");
        }
        assert_eq!(AuthToken::new(""), Err(EmptyToken));
        assert!(!format!("{token:?}").contains("horse"));
    }

    #[test]
    fn a_token_file_is_read_without_its_line_break_and_must_not_be_empty() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "s3cret\n").unwrap();
        assert!(AuthToken::from_file(&file).unwrap().matches(b"s3cret"));
        std::fs::write(&file, " \n").unwrap();
        let empty = AuthToken::from_file(&file).unwrap_err();
        assert_eq!(empty.kind(), io::ErrorKind::InvalidData);
        assert!(empty.to_string().contains("is empty"), "{empty}");
        let missing = AuthToken::from_file(dir.path().join("nope")).unwrap_err();
        assert_eq!(missing.kind(), io::ErrorKind::NotFound);
        assert!(missing.to_string().contains("nope"), "{missing}");
    }

    #[test]
    fn text_from_the_environment_is_trimmed_as_a_file_is() {
        let token = AuthToken::from_text("s3cret \r\n").unwrap();
        assert!(token.matches(b"s3cret"));
        assert_eq!(AuthToken::from_text(" \n"), Err(EmptyToken));
    }

    #[test]
    fn a_token_file_is_read_up_to_a_bound() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, vec![b'x'; MAX_TOKEN_FILE]).unwrap();
        assert!(AuthToken::from_file(&file).is_ok());
        std::fs::write(&file, vec![b'x'; MAX_TOKEN_FILE + 1]).unwrap();
        let large = AuthToken::from_file(&file).unwrap_err();
        assert_eq!(large.kind(), io::ErrorKind::InvalidData);
        assert!(large.to_string().contains("larger than"), "{large}");
        // An endless file: refused after its first few KiB, not read on.
        #[cfg(unix)]
        {
            let endless = AuthToken::from_file("/dev/zero").unwrap_err();
            assert!(endless.to_string().contains("larger than"), "{endless}");
        }
    }
}
