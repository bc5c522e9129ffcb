//! Ed25519 keys for the schemes that sign with one (Discord, Standard Webhooks `v1a`).

use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};

/// A provider's public key.
#[derive(Clone)]
pub struct PublicKey(VerifyingKey);

impl PublicKey {
    /// `None` unless `bytes` is a valid 32-byte key.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let bytes: &[u8; 32] = bytes.try_into().ok()?;
        VerifyingKey::from_bytes(bytes).ok().map(Self)
    }

    /// Strict verification: refuses the malleable and small-order forms plain Ed25519 lets by.
    pub fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        Signature::from_slice(signature)
            .is_ok_and(|signature| self.0.verify_strict(message, &signature).is_ok())
    }
}

/// True when any signature verifies under any key: during a rotation both keys sign.
pub fn any_verifies(keys: &[PublicKey], message: &[u8], signatures: &[Vec<u8>]) -> bool {
    keys.iter()
        .any(|key| signatures.iter().any(|s| key.verifies(message, s)))
}

/// A private key, given to `hookgate send` only.
pub struct PrivateKey(SigningKey);

impl PrivateKey {
    /// From the 32-byte seed, or the 64 bytes of seed and public key.
    pub fn from_seed(bytes: &[u8]) -> Option<Self> {
        let seed: &[u8; 32] = bytes.get(..32)?.try_into().ok()?;
        (bytes.len() == 32 || bytes.len() == 64).then(|| Self(SigningKey::from_bytes(seed)))
    }

    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.0.sign(message).to_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_8032_test_2() {
        // RFC 8032 section 7.1, TEST 2: one-byte message 0x72.
        let seed = hex::decode("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb")
            .unwrap();
        let public =
            hex::decode("3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c")
                .unwrap();
        let expected = hex::decode(
            "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da\
             085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
        )
        .unwrap();
        let signature = PrivateKey::from_seed(&seed).unwrap().sign(&[0x72]);
        assert_eq!(signature.to_vec(), expected);
        let key = PublicKey::from_bytes(&public).unwrap();
        assert!(key.verifies(&[0x72], &expected));
        assert!(!key.verifies(&[0x73], &expected));
        assert!(!key.verifies(&[0x72], &expected[..63]));
        assert!(PublicKey::from_bytes(&public[..31]).is_none());
    }
}
