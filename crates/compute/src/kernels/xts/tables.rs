//! AES on the host for the GPU kernel: the S-boxes and round tables (generated from the
//! field arithmetic, not typed in), the AES-256 key schedules, all as the little-endian
//! `u32` column words the WGSL works on: state column `c` is bytes `4c..4c + 4` of the
//! block, row `r` at bits `8r..8r + 8`.
//!
//! Round table `T[x]` of the encryption direction is the MixColumns column of
//! `S[x]` in row 0, `(2s, s, s, 3s)`; rows 1..3 use it rotated left by 8, 16, 24 bits.
//! The decryption table is `(14s, 9s, 13s, 11s)` of the inverse S-box, for the
//! equivalent inverse cipher (FIPS-197 §5.3.5) with its own key schedule.

/// Rounds of AES-256.
pub const ROUNDS: usize = 14;
/// Words of an AES-256 key schedule: 15 round keys of 4 words.
pub const SCHEDULE_WORDS: usize = 4 * (ROUNDS + 1);

/// Multiplication by x in GF(2^8) modulo x^8 + x^4 + x^3 + x + 1.
const fn xtime(a: u8) -> u8 {
    (a << 1) ^ if a & 0x80 != 0 { 0x1b } else { 0 }
}

/// Product in GF(2^8).
const fn gmul(mut a: u8, mut b: u8) -> u8 {
    let mut p = 0u8;
    while b != 0 {
        if b & 1 != 0 {
            p ^= a;
        }
        a = xtime(a);
        b >>= 1;
    }
    p
}

/// The AES S-box and its inverse, from the multiplicative inverse and the affine map.
const fn sboxes() -> ([u8; 256], [u8; 256]) {
    let mut s = [0u8; 256];
    let mut inv = [0u8; 256];
    let mut x = 0usize;
    while x < 256 {
        // Inverse of x as x^254 (0 maps to 0): x^2 · x^4 · ... · x^128.
        let mut y = 1u8;
        let mut sq = x as u8;
        let mut k = 1;
        while k < 8 {
            sq = gmul(sq, sq);
            y = gmul(y, sq);
            k += 1;
        }
        let v =
            y ^ y.rotate_left(1) ^ y.rotate_left(2) ^ y.rotate_left(3) ^ y.rotate_left(4) ^ 0x63;
        s[x] = v;
        inv[v as usize] = x as u8;
        x += 1;
    }
    (s, inv)
}

const SBOXES: ([u8; 256], [u8; 256]) = sboxes();
/// The AES S-box.
pub const SBOX: [u8; 256] = SBOXES.0;
/// The inverse S-box.
pub const INV_SBOX: [u8; 256] = SBOXES.1;

/// A column of four bytes as a little-endian word (byte 0 = row 0).
const fn col(b0: u8, b1: u8, b2: u8, b3: u8) -> u32 {
    u32::from_le_bytes([b0, b1, b2, b3])
}

/// The table the kernel loads for one direction: 256 round-table words, then the
/// (inverse) S-box widened to 256 words.
pub fn direction_tables(decrypt: bool) -> Vec<u32> {
    let mut out = Vec::with_capacity(512);
    for x in 0..256 {
        out.push(if decrypt {
            let s = INV_SBOX[x];
            col(gmul(s, 14), gmul(s, 9), gmul(s, 13), gmul(s, 11))
        } else {
            let s = SBOX[x];
            col(gmul(s, 2), s, s, gmul(s, 3))
        });
    }
    let sbox = if decrypt { &INV_SBOX } else { &SBOX };
    out.extend(sbox.iter().map(|&s| u32::from(s)));
    out
}

/// Both directions, as uploaded: encryption at word 0, decryption at [`DECRYPT_BASE`].
pub fn all_tables() -> Vec<u32> {
    let mut t = direction_tables(false);
    t.extend(direction_tables(true));
    t
}

/// Word offset of the decryption tables in [`all_tables`].
pub const DECRYPT_BASE: u32 = 512;

/// The AES-256 encryption key schedule (FIPS-197 §5.2) as column words.
pub fn encrypt_schedule(key: &[u8; 32]) -> [u32; SCHEDULE_WORDS] {
    let mut w = [[0u8; 4]; SCHEDULE_WORDS];
    for (i, chunk) in key.chunks_exact(4).enumerate() {
        w[i].copy_from_slice(chunk);
    }
    let mut rcon = 1u8;
    for i in 8..SCHEDULE_WORDS {
        let mut t = w[i - 1];
        if i % 8 == 0 {
            t = [
                SBOX[t[1] as usize] ^ rcon,
                SBOX[t[2] as usize],
                SBOX[t[3] as usize],
                SBOX[t[0] as usize],
            ];
            rcon = xtime(rcon);
        } else if i % 8 == 4 {
            t = t.map(|b| SBOX[b as usize]);
        }
        for (j, b) in t.iter().enumerate() {
            w[i][j] = w[i - 8][j] ^ b;
        }
    }
    w.map(u32::from_le_bytes)
}

/// InvMixColumns of one column word.
fn inv_mix_column(word: u32) -> u32 {
    let a = word.to_le_bytes();
    let m = |c0: u8, c1: u8, c2: u8, c3: u8| {
        gmul(a[0], c0) ^ gmul(a[1], c1) ^ gmul(a[2], c2) ^ gmul(a[3], c3)
    };
    col(
        m(14, 11, 13, 9),
        m(9, 14, 11, 13),
        m(13, 9, 14, 11),
        m(11, 13, 9, 14),
    )
}

/// The key schedule of the equivalent inverse cipher: the encryption round keys in
/// reverse order, the inner ones through InvMixColumns.
pub fn decrypt_schedule(enc: &[u32; SCHEDULE_WORDS]) -> [u32; SCHEDULE_WORDS] {
    let mut d = [0u32; SCHEDULE_WORDS];
    for r in 0..=ROUNDS {
        for c in 0..4 {
            let w = enc[4 * (ROUNDS - r) + c];
            d[4 * r + c] = if r == 0 || r == ROUNDS {
                w
            } else {
                inv_mix_column(w)
            };
        }
    }
    d
}

#[cfg(test)]
mod tests {
    //! A Rust copy of the kernel's round formulas, held against the `aes` crate, so the
    //! byte order of tables, schedules and column indexing is checked on the CPU.
    use super::*;
    use aes::cipher::{generic_array::GenericArray, BlockDecrypt, BlockEncrypt, KeyInit};

    fn words(b: &[u8; 16]) -> [u32; 4] {
        let mut w = [0u32; 4];
        for (i, c) in b.chunks_exact(4).enumerate() {
            w[i] = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        }
        w
    }

    /// As aes_block in kernels/aes_xts_common.wgsl.
    fn model(tables: &[u32], rk: &[u32; SCHEDULE_WORDS], block: &[u8; 16], dec: bool) -> [u8; 16] {
        let t = |i: usize, x: u32| tables[(x & 0xff) as usize].rotate_left(8 * i as u32);
        let sb = |x: u32| tables[256 + (x & 0xff) as usize];
        // Source column of row r for output column c.
        let src = |c: usize, r: usize| if dec { (c + 4 - r) % 4 } else { (c + r) % 4 };
        let mut s = words(block);
        for c in 0..4 {
            s[c] ^= rk[c];
        }
        for round in 1..ROUNDS {
            let mut n = [0u32; 4];
            for c in 0..4 {
                n[c] = (0..4).fold(rk[4 * round + c], |acc, r| {
                    acc ^ t(r, s[src(c, r)] >> (8 * r))
                });
            }
            s = n;
        }
        let mut out = [0u8; 16];
        for c in 0..4 {
            let w = (0..4).fold(0u32, |acc, r| acc | sb(s[src(c, r)] >> (8 * r)) << (8 * r))
                ^ rk[4 * ROUNDS + c];
            out[4 * c..4 * c + 4].copy_from_slice(&w.to_le_bytes());
        }
        out
    }

    #[test]
    fn sbox_known_entries() {
        assert_eq!(SBOX[0], 0x63);
        assert_eq!(SBOX[1], 0x7c);
        assert_eq!(SBOX[0x53], 0xed);
        assert_eq!(INV_SBOX[0x63], 0);
        assert_eq!(INV_SBOX[0xed], 0x53);
    }

    #[test]
    fn table_rounds_match_the_aes_crate() {
        let enc_t = direction_tables(false);
        let dec_t = direction_tables(true);
        let mut seed = 0x1234_5678_9abc_def0u64;
        let mut next = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as u8
        };
        for _ in 0..50 {
            let mut key = [0u8; 32];
            key.iter_mut().for_each(|b| *b = next());
            let mut block = [0u8; 16];
            block.iter_mut().for_each(|b| *b = next());
            let cipher = aes::Aes256::new(GenericArray::from_slice(&key));
            let ek = encrypt_schedule(&key);
            let dk = decrypt_schedule(&ek);
            let mut want = GenericArray::clone_from_slice(&block);
            cipher.encrypt_block(&mut want);
            let got = model(&enc_t, &ek, &block, false);
            assert_eq!(&got[..], &want[..]);
            let mut back = want;
            cipher.decrypt_block(&mut back);
            assert_eq!(model(&dec_t, &dk, &got, true), block);
            assert_eq!(&back[..], &block[..]);
        }
    }
}
