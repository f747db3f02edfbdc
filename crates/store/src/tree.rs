//! BLAKE3 verified streaming at 1 MiB granularity.
//!
//! A blob's CID is the plain BLAKE3 hash of its bytes. BLAKE3 is a Merkle tree, so the hash of
//! the whole blob is also the root over the chaining values of its aligned 1 MiB groups. A
//! peer sends those chaining values first ([`Tree`], 32 bytes a MiB: 3 KiB for the default
//! model); the fetcher checks that they combine to the CID, and from then on checks each
//! 1 MiB range on its own as it arrives. A peer that sends one wrong byte is caught at that
//! group, not after the whole download.
//!
//! Only `blake3::hazmat` is used: no second hash, and nothing stored next to the CID.

use agora_types::{Cid, Hash};
use blake3::hazmat::{
    merge_subtrees_non_root, merge_subtrees_root, ChainingValue, HasherExt, Mode,
};

/// Bytes per verified group: a power of two times BLAKE3's 1 KiB chunk, so each group is a
/// whole subtree of the blob's hash tree.
pub const GROUP: u64 = 1 << 20;

/// Largest blob a tree describes (64 GiB), which bounds the tree a peer may send (2 MiB).
pub const MAX_BLOB: u64 = 64 << 30;

/// Why a tree from a peer was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TreeError {
    /// The encoding is not a length followed by one chaining value per group.
    #[error("tree encoding: {0}")]
    Encoding(&'static str),
    /// The chaining values do not combine to the CID.
    #[error("tree does not hash to {0}")]
    WrongRoot(Cid),
}

/// A blob's length and the chaining value of each of its 1 MiB groups.
///
/// A blob of one group or less has no inner nodes; its single entry is then the root hash
/// itself, and the group is checked with a plain hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tree {
    len: u64,
    groups: Vec<ChainingValue>,
}

impl Tree {
    /// The tree of `bytes` read from `reader`, which yields exactly `len` bytes.
    pub fn compute(reader: &mut dyn std::io::Read, len: u64) -> std::io::Result<Tree> {
        let count = group_count(len);
        let mut groups = Vec::with_capacity(count as usize);
        let mut buffer = vec![0u8; GROUP as usize];
        for index in 0..count {
            let size = group_len(len, index) as usize;
            reader.read_exact(&mut buffer[..size])?;
            groups.push(group_value(len, index, &buffer[..size]));
        }
        Ok(Tree { len, groups })
    }

    /// Decodes a tree a peer sent for `cid` and checks that it combines to `cid`.
    pub fn decode(bytes: &[u8], cid: &Cid) -> Result<Tree, TreeError> {
        let (len, rest) = bytes
            .split_first_chunk::<8>()
            .ok_or(TreeError::Encoding("shorter than its length field"))?;
        let len = u64::from_le_bytes(*len);
        if len > MAX_BLOB {
            return Err(TreeError::Encoding("blob too large"));
        }
        if rest.len() as u64 != group_count(len) * 32 {
            return Err(TreeError::Encoding("wrong number of chaining values"));
        }
        let groups = rest
            .chunks_exact(32)
            .map(|cv| cv.try_into().expect("chunks of 32"))
            .collect();
        let tree = Tree { len, groups };
        if tree.root() != *cid.hash() {
            return Err(TreeError::WrongRoot(*cid));
        }
        Ok(tree)
    }

    /// The canonical bytes: the length (u64 little-endian), then each group's chaining value.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + self.groups.len() * 32);
        out.extend_from_slice(&self.len.to_le_bytes());
        for cv in &self.groups {
            out.extend_from_slice(cv);
        }
        out
    }

    /// The blob's length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the blob is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// How many groups the blob has (at least one, even when empty).
    pub fn groups(&self) -> u64 {
        self.groups.len() as u64
    }

    /// The byte range of group `index`: its offset and length.
    pub fn range(&self, index: u64) -> (u64, u64) {
        (index * GROUP, group_len(self.len, index))
    }

    /// Whether `bytes` are exactly group `index` of the blob.
    pub fn verify(&self, index: u64, bytes: &[u8]) -> bool {
        let Some(expected) = self.groups.get(index as usize) else {
            return false;
        };
        bytes.len() as u64 == group_len(self.len, index)
            && group_value(self.len, index, bytes) == *expected
    }

    /// The BLAKE3 hash the groups combine to.
    pub fn root(&self) -> Hash {
        if self.groups.len() == 1 {
            return Hash(self.groups[0]);
        }
        let (left, right) = self.groups.split_at(split(self.groups.len()));
        Hash(*merge_subtrees_root(&subtree(left), &subtree(right), Mode::Hash).as_bytes())
    }
}

/// The chaining value of a run of whole groups (non-root).
fn subtree(groups: &[ChainingValue]) -> ChainingValue {
    if groups.len() == 1 {
        return groups[0];
    }
    let (left, right) = groups.split_at(split(groups.len()));
    merge_subtrees_non_root(&subtree(left), &subtree(right), Mode::Hash)
}

/// BLAKE3's left subtree holds the largest power of two of (whole) groups that leaves at
/// least one byte to the right.
fn split(groups: usize) -> usize {
    debug_assert!(groups > 1);
    1 << (usize::BITS - 1 - (groups - 1).leading_zeros())
}

fn group_count(len: u64) -> u64 {
    len.div_ceil(GROUP).max(1)
}

fn group_len(len: u64, index: u64) -> u64 {
    len.saturating_sub(index * GROUP).min(GROUP)
}

/// A group's chaining value, or the root hash when the blob is a single group.
fn group_value(len: u64, index: u64, bytes: &[u8]) -> ChainingValue {
    if len <= GROUP {
        return *blake3::hash(bytes).as_bytes();
    }
    blake3::Hasher::new()
        .set_input_offset(index * GROUP)
        .update(bytes)
        .finalize_non_root()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + i / 1000) as u8).collect()
    }

    #[test]
    fn the_groups_combine_to_the_plain_blake3_hash() {
        let g = GROUP as usize;
        for len in [
            0,
            1,
            1024,
            g - 1,
            g,
            g + 1,
            2 * g,
            2 * g + 5,
            3 * g,
            5 * g + 17,
            8 * g,
        ] {
            let bytes = blob(len);
            let tree = Tree::compute(&mut &bytes[..], len as u64).unwrap();
            let cid = Cid::of(&bytes);
            assert_eq!(tree.root(), *cid.hash(), "len {len}");
            assert_eq!(Tree::decode(&tree.encode(), &cid).unwrap(), tree);
            for index in 0..tree.groups() {
                let (offset, size) = tree.range(index);
                let part = &bytes[offset as usize..(offset + size) as usize];
                assert!(tree.verify(index, part), "len {len} group {index}");
            }
        }
    }

    #[test]
    fn a_changed_byte_fails_only_its_group() {
        let g = GROUP as usize;
        let mut bytes = blob(3 * g + 100);
        let tree = Tree::compute(&mut &bytes[..], bytes.len() as u64).unwrap();
        bytes[g + 12] ^= 1;
        assert!(tree.verify(0, &bytes[..g]));
        assert!(!tree.verify(1, &bytes[g..2 * g]));
        assert!(tree.verify(2, &bytes[2 * g..3 * g]));
        assert!(!tree.verify(3, &bytes[3 * g..3 * g + 99]), "short group");
        assert!(!tree.verify(9, &bytes[..g]), "no such group");
    }

    #[test]
    fn a_tree_for_other_bytes_is_refused() {
        let bytes = blob(2 * GROUP as usize + 3);
        let tree = Tree::compute(&mut &bytes[..], bytes.len() as u64).unwrap();
        let mut encoded = tree.encode();
        encoded[20] ^= 1;
        let cid = Cid::of(&bytes);
        assert_eq!(Tree::decode(&encoded, &cid), Err(TreeError::WrongRoot(cid)));
        assert!(matches!(
            Tree::decode(&encoded[..40], &cid),
            Err(TreeError::Encoding(_))
        ));
        assert!(matches!(
            Tree::decode(&[1], &cid),
            Err(TreeError::Encoding(_))
        ));
    }
}
