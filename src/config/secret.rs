//! Passwords: a [`Secret`] never prints its value, and DM's encrypted form is accepted.
//!
//! DM encrypts passwords with AES-256-CFB under a 32-byte key read (as 64 hex characters) from
//! the master's `secret-key-path`. The stored text is `base64(iv ‖ '@' ‖ ciphertext)` with a
//! 16-byte random IV. Every password key accepts either that form or plain text: a value that
//! does not decrypt under the key is taken as plain text, as DM does.

use std::fmt;
use std::path::Path;

use aes::cipher::{AsyncStreamCipher, KeyIvInit};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{DmError, codes};

type Aes256CfbEnc = cfb_mode::Encryptor<aes::Aes256>;
type Aes256CfbDec = cfb_mode::Decryptor<aes::Aes256>;

const IV_LEN: usize = 16;
const IV_SEP: u8 = b'@';

/// A password or other secret. `Debug` and `Display` print `******`; the value is reachable
/// only through [`Secret::expose`], at the place that hands it to a connection.
///
/// `Serialize` writes the value as given (plain or cipher text) because configs are stored in
/// etcd and read back by workers; API answers must use [`Secret::redacted`] views instead.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value as written in the config (plain or cipher text).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// True when no password was given.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The plain text: decrypted when a key is given and the value is DM cipher text under it,
    /// the value itself otherwise.
    pub fn plain(&self, key: Option<&SecretKey>) -> String {
        key.and_then(|k| k.decrypt(&self.0).ok())
            .unwrap_or_else(|| self.0.clone())
    }

    /// What APIs and status answers show in place of the value.
    pub fn redacted(&self) -> &'static str {
        if self.0.is_empty() { "" } else { "******" }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.redacted())
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.redacted())
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Numeric passwords (`password: 123456`) are common in DM samples.
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            S(String),
            I(i64),
        }
        Ok(match Raw::deserialize(d)? {
            Raw::S(s) => Self(s),
            Raw::I(i) => Self(i.to_string()),
        })
    }
}

/// The 32-byte AES-256 key of `secret-key-path`.
#[derive(Clone)]
pub struct SecretKey([u8; 32]);

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(******)")
    }
}

impl SecretKey {
    /// Reads a key file holding 64 hex characters (surrounding whitespace ignored).
    pub fn from_file(path: &Path) -> Result<Self, DmError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            DmError::new(
                &codes::CONFIG_SECRET_KEY,
                format!("cannot read secret key file `{}`", path.display()),
            )
            .with_cause(e)
        })?;
        Self::from_hex(text.trim()).map_err(|m| {
            DmError::new(
                &codes::CONFIG_SECRET_KEY,
                format!("secret key file `{}`: {m}", path.display()),
            )
        })
    }

    /// Parses 64 hex characters.
    pub fn from_hex(text: &str) -> Result<Self, String> {
        let bytes = hex::decode(text).map_err(|_| "key is not hex".to_string())?;
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|b: Vec<u8>| format!("key has {} bytes, expected 32", b.len()))?;
        Ok(Self(key))
    }

    /// A new random key, as 64 hex characters.
    pub fn generate_hex() -> String {
        hex::encode(rand::random::<[u8; 32]>())
    }

    /// Encrypts to DM's `base64(iv@data)` form with a fresh random IV.
    pub fn encrypt(&self, plain: &str) -> String {
        let iv: [u8; IV_LEN] = rand::random();
        let mut data = plain.as_bytes().to_vec();
        Aes256CfbEnc::new(&self.0.into(), &iv.into()).encrypt(&mut data);
        let mut out = Vec::with_capacity(IV_LEN + 1 + data.len());
        out.extend_from_slice(&iv);
        out.push(IV_SEP);
        out.extend_from_slice(&data);
        BASE64.encode(out)
    }

    /// Decrypts DM cipher text; an error when the text is not of that form or not UTF-8 after
    /// decryption (then the caller takes it as plain text).
    pub fn decrypt(&self, cipher: &str) -> Result<String, String> {
        let raw = BASE64
            .decode(cipher.trim())
            .map_err(|_| "not base64".to_string())?;
        if raw.len() <= IV_LEN || raw[IV_LEN] != IV_SEP {
            return Err("not DM cipher text".into());
        }
        let iv: [u8; IV_LEN] = raw[..IV_LEN].try_into().expect("length checked");
        let mut data = raw[IV_LEN + 1..].to_vec();
        Aes256CfbDec::new(&self.0.into(), &iv.into()).decrypt(&mut data);
        String::from_utf8(data).map_err(|_| "wrong key or corrupt cipher text".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_never_prints() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?} {s}"), "****** ******");
        assert_eq!(s.expose(), "hunter2");
        #[derive(Debug)]
        #[allow(dead_code)]
        struct Holder {
            password: Secret,
        }
        assert!(!format!("{:?}", Holder { password: s }).contains("hunter2"));
    }

    #[test]
    fn encrypt_round_trips_and_plain_passes_through() {
        let key = SecretKey::from_hex(&SecretKey::generate_hex()).unwrap();
        let c = key.encrypt("p@ss wörd");
        assert_ne!(c, "p@ss wörd");
        assert_eq!(Secret::new(c.clone()).plain(Some(&key)), "p@ss wörd");
        assert_eq!(Secret::new("plain").plain(Some(&key)), "plain");
        assert_eq!(Secret::new(c.clone()).plain(None), c);
        // Two encryptions differ (random IV) but both decrypt.
        assert_ne!(key.encrypt("x"), key.encrypt("x"));
    }

    #[test]
    fn known_vector_from_cfb_layout() {
        // base64(iv ‖ '@' ‖ AES-256-CFB(key, iv, "123456")) built by hand: checks the layout.
        let key = SecretKey::from_hex(&"01".repeat(32)).unwrap();
        let iv = [7u8; 16];
        let mut data = b"123456".to_vec();
        Aes256CfbEnc::new(&key.0.into(), &iv.into()).encrypt(&mut data);
        let mut raw = iv.to_vec();
        raw.push(b'@');
        raw.extend(data);
        assert_eq!(key.decrypt(&BASE64.encode(raw)).unwrap(), "123456");
    }

    #[test]
    fn bad_keys_are_rejected() {
        assert!(SecretKey::from_hex("zz").is_err());
        assert!(SecretKey::from_hex("0011").is_err());
    }
}
