//! The hashes ext4 stores: directory name hashes for htree indexes (half
//! MD4, `fs/ext4/hash.c` semantics, unsigned variant) and extended
//! attribute entry and block hashes (`fs/ext4/xattr.c`).
//!
//! Only half MD4 is implemented: it is mke2fs's default `s_def_hash_version`
//! and what every kernel reads; TEA and legacy would add code and nothing
//! else.

/// `EXT4_HTREE_EOF_32BIT`: the reserved end-of-directory hash.
const HTREE_EOF_32BIT: u32 = 0x7fff_ffff;

/// MD4 round constants (`fs/ext4/hash.c` K2, K3; K1 is 0).
const K2: u32 = 0o13240474631;
const K3: u32 = 0o15666365641;

/// Initial MD4 state, used when the superblock hash seed is all zero.
const MD4_INIT: [u32; 4] = [0x6745_2301, 0xefcd_ab89, 0x98ba_dcfe, 0x1032_5476];

fn half_md4_transform(buf: &mut [u32; 4], inp: &[u32; 8]) {
    let (mut a, mut b, mut c, mut d) = (buf[0], buf[1], buf[2], buf[3]);
    let f = |x: u32, y: u32, z: u32| z ^ (x & (y ^ z));
    let g = |x: u32, y: u32, z: u32| (x & y).wrapping_add((x ^ y) & z);
    let h = |x: u32, y: u32, z: u32| x ^ y ^ z;
    macro_rules! round {
        ($f:expr, $a:ident, $b:ident, $c:ident, $d:ident, $x:expr, $s:expr) => {
            $a = $a
                .wrapping_add($f($b, $c, $d))
                .wrapping_add($x)
                .rotate_left($s);
        };
    }
    round!(f, a, b, c, d, inp[0], 3);
    round!(f, d, a, b, c, inp[1], 7);
    round!(f, c, d, a, b, inp[2], 11);
    round!(f, b, c, d, a, inp[3], 19);
    round!(f, a, b, c, d, inp[4], 3);
    round!(f, d, a, b, c, inp[5], 7);
    round!(f, c, d, a, b, inp[6], 11);
    round!(f, b, c, d, a, inp[7], 19);

    round!(g, a, b, c, d, inp[1].wrapping_add(K2), 3);
    round!(g, d, a, b, c, inp[3].wrapping_add(K2), 5);
    round!(g, c, d, a, b, inp[5].wrapping_add(K2), 9);
    round!(g, b, c, d, a, inp[7].wrapping_add(K2), 13);
    round!(g, a, b, c, d, inp[0].wrapping_add(K2), 3);
    round!(g, d, a, b, c, inp[2].wrapping_add(K2), 5);
    round!(g, c, d, a, b, inp[4].wrapping_add(K2), 9);
    round!(g, b, c, d, a, inp[6].wrapping_add(K2), 13);

    round!(h, a, b, c, d, inp[3].wrapping_add(K3), 3);
    round!(h, d, a, b, c, inp[7].wrapping_add(K3), 9);
    round!(h, c, d, a, b, inp[2].wrapping_add(K3), 11);
    round!(h, b, c, d, a, inp[6].wrapping_add(K3), 15);
    round!(h, a, b, c, d, inp[1].wrapping_add(K3), 3);
    round!(h, d, a, b, c, inp[5].wrapping_add(K3), 9);
    round!(h, c, d, a, b, inp[0].wrapping_add(K3), 11);
    round!(h, b, c, d, a, inp[4].wrapping_add(K3), 15);

    buf[0] = buf[0].wrapping_add(a);
    buf[1] = buf[1].wrapping_add(b);
    buf[2] = buf[2].wrapping_add(c);
    buf[3] = buf[3].wrapping_add(d);
}

/// Packs up to 32 name bytes into 8 words, padded with the length
/// (`str2hashbuf_unsigned`).
fn str2hashbuf(msg: &[u8], out: &mut [u32; 8]) {
    let len = msg.len() as u32;
    let mut pad = len | (len << 8);
    pad |= pad << 16;
    let mut val = pad;
    let mut idx = 0;
    for (i, &b) in msg.iter().take(32).enumerate() {
        val = u32::from(b).wrapping_add(val << 8);
        if i % 4 == 3 {
            out[idx] = val;
            idx += 1;
            val = pad;
        }
    }
    if idx < 8 {
        out[idx] = val;
        idx += 1;
    }
    for w in out.iter_mut().skip(idx) {
        *w = pad;
    }
}

/// The htree hash of a file name: (major hash, minor hash).
pub fn dx_hash(name: &[u8], seed: &[u8; 16]) -> (u32, u32) {
    let mut buf = MD4_INIT;
    let seed_words: [u32; 4] = std::array::from_fn(|i| {
        u32::from_le_bytes([
            seed[4 * i],
            seed[4 * i + 1],
            seed[4 * i + 2],
            seed[4 * i + 3],
        ])
    });
    if seed_words.iter().any(|&w| w != 0) {
        buf = seed_words;
    }
    let mut inp = [0u32; 8];
    let mut rest = name;
    loop {
        str2hashbuf(rest, &mut inp);
        half_md4_transform(&mut buf, &inp);
        if rest.len() <= 32 {
            break;
        }
        rest = &rest[32..];
    }
    let mut hash = buf[1] & !1;
    if hash == HTREE_EOF_32BIT << 1 {
        hash = (HTREE_EOF_32BIT - 1) << 1;
    }
    (hash, buf[2])
}

/// Hash of one extended attribute entry (name suffix and value).
pub fn xattr_entry_hash(name: &[u8], value: &[u8]) -> u32 {
    const NAME_HASH_SHIFT: u32 = 5;
    const VALUE_HASH_SHIFT: u32 = 16;
    let mut hash: u32 = 0;
    for &b in name {
        hash = (hash << NAME_HASH_SHIFT) ^ (hash >> (32 - NAME_HASH_SHIFT)) ^ u32::from(b);
    }
    for chunk in value.chunks(4) {
        let mut w = [0u8; 4];
        w[..chunk.len()].copy_from_slice(chunk);
        hash =
            (hash << VALUE_HASH_SHIFT) ^ (hash >> (32 - VALUE_HASH_SHIFT)) ^ u32::from_le_bytes(w);
    }
    hash
}

/// Hash of an xattr block from its entry hashes (`ext4_xattr_rehash`).
pub fn xattr_block_hash(entry_hashes: &[u32]) -> u32 {
    const BLOCK_HASH_SHIFT: u32 = 16;
    let mut hash: u32 = 0;
    for &h in entry_hashes {
        if h == 0 {
            return 0;
        }
        hash = (hash << BLOCK_HASH_SHIFT) ^ (hash >> (32 - BLOCK_HASH_SHIFT)) ^ h;
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dx_hash_is_even_and_seed_dependent() {
        let a = dx_hash(b"hello", &[0; 16]);
        let b = dx_hash(b"hello", &[1; 16]);
        assert_eq!(a.0 & 1, 0);
        assert_ne!(a, b);
        // Long names hash over several 32-byte rounds.
        let long = [b'x'; 100];
        assert_ne!(dx_hash(&long, &[0; 16]), dx_hash(&long[..99], &[0; 16]));
    }
}
