//! Reading what a GGUF model file says about itself, so a proposal to govern a model can be
//! filled in from the file instead of by hand.
//!
//! Only the header's key–value section is read (GGUF v2 and v3, little-endian); tensors are
//! never touched. Every length is bounded, so a malformed file is an error, not an allocation
//! of whatever size it claims.

use std::io::{self, Read};

/// Longest string value read (the chat template is the longest one in practice).
const MAX_STRING: u64 = 1 << 20;
/// Most key–value pairs read.
const MAX_KEYS: u64 = 1 << 16;

/// What a GGUF header says about its model.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GgufInfo {
    /// `general.architecture`, e.g. `llama`.
    pub architecture: String,
    /// `general.name`, when present.
    pub name: Option<String>,
    /// The quantization named by `general.file_type`, e.g. `Q4_1`.
    pub quantization: Option<String>,
    /// `<architecture>.context_length`, when present.
    pub context_length: Option<u32>,
}

/// Why a file is not a GGUF this reader understands.
#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    /// Reading failed or the file ended early.
    #[error("reading the GGUF header: {0}")]
    Io(#[from] io::Error),
    /// The bytes are not a GGUF header.
    #[error("not a GGUF file: {0}")]
    Format(String),
}

/// Reads the header of the GGUF file in `reader`.
pub fn read_info(reader: &mut dyn Read) -> Result<GgufInfo, GgufError> {
    let mut r = io::BufReader::new(reader);
    let mut magic = [0u8; 4];
    r.read_exact(&mut magic)?;
    if &magic != b"GGUF" {
        return Err(GgufError::Format("bad magic".into()));
    }
    let version = read_u32(&mut r)?;
    if !(2..=3).contains(&version) {
        return Err(GgufError::Format(format!("version {version}")));
    }
    let _tensors = read_u64(&mut r)?;
    let keys = read_u64(&mut r)?;
    if keys > MAX_KEYS {
        return Err(GgufError::Format(format!("{keys} keys")));
    }
    let mut info = GgufInfo::default();
    let mut file_type = None;
    let mut context_lengths = Vec::new();
    for _ in 0..keys {
        let key = read_string(&mut r)?;
        let kind = read_u32(&mut r)?;
        match (key.as_str(), kind) {
            ("general.architecture", 8) => info.architecture = read_string(&mut r)?,
            ("general.name", 8) => info.name = Some(read_string(&mut r)?),
            ("general.file_type", 4) => file_type = Some(read_u32(&mut r)?),
            (key, 4) if key.ends_with(".context_length") => {
                context_lengths.push((
                    key.trim_end_matches(".context_length").to_owned(),
                    read_u32(&mut r)?,
                ));
            }
            _ => skip_value(&mut r, kind, 0)?,
        }
    }
    if info.architecture.is_empty() {
        return Err(GgufError::Format("no general.architecture".into()));
    }
    info.context_length = context_lengths
        .into_iter()
        .find(|(arch, _)| *arch == info.architecture)
        .map(|(_, n)| n);
    info.quantization = file_type.map(quantization_name);
    Ok(info)
}

/// llama.cpp's name for a `general.file_type` value.
fn quantization_name(file_type: u32) -> String {
    let name = match file_type {
        0 => "F32",
        1 => "F16",
        2 => "Q4_0",
        3 => "Q4_1",
        7 => "Q8_0",
        8 => "Q5_0",
        9 => "Q5_1",
        10 => "Q2_K",
        11 => "Q3_K_S",
        12 => "Q3_K_M",
        13 => "Q3_K_L",
        14 => "Q4_K_S",
        15 => "Q4_K_M",
        16 => "Q5_K_S",
        17 => "Q5_K_M",
        18 => "Q6_K",
        32 => "BF16",
        other => return format!("file_type {other}"),
    };
    name.to_owned()
}

fn read_u32(r: &mut impl Read) -> io::Result<u32> {
    let mut b = [0u8; 4];
    r.read_exact(&mut b)?;
    Ok(u32::from_le_bytes(b))
}

fn read_u64(r: &mut impl Read) -> io::Result<u64> {
    let mut b = [0u8; 8];
    r.read_exact(&mut b)?;
    Ok(u64::from_le_bytes(b))
}

fn read_string(r: &mut impl Read) -> Result<String, GgufError> {
    let len = read_u64(r)?;
    if len > MAX_STRING {
        return Err(GgufError::Format(format!("a {len}-byte string")));
    }
    let mut bytes = vec![0u8; len as usize];
    r.read_exact(&mut bytes)?;
    String::from_utf8(bytes).map_err(|_| GgufError::Format("a string that is not UTF-8".into()))
}

/// Skips one value of GGUF type `kind` (arrays nest at most once in practice; deeper is refused).
fn skip_value(r: &mut impl Read, kind: u32, depth: u8) -> Result<(), GgufError> {
    let fixed = match kind {
        0 | 1 | 7 => 1,
        2 | 3 => 2,
        4..=6 => 4,
        10..=12 => 8,
        8 => {
            let len = read_u64(r)?;
            if len > MAX_STRING {
                return Err(GgufError::Format(format!("a {len}-byte string")));
            }
            io::copy(&mut r.take(len), &mut io::sink())?;
            return Ok(());
        }
        9 if depth == 0 => {
            let item = read_u32(r)?;
            let count = read_u64(r)?;
            if count > 1 << 24 {
                return Err(GgufError::Format(format!("an array of {count}")));
            }
            for _ in 0..count {
                skip_value(r, item, depth + 1)?;
            }
            return Ok(());
        }
        other => return Err(GgufError::Format(format!("value type {other}"))),
    };
    io::copy(&mut r.take(fixed), &mut io::sink())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn string(out: &mut Vec<u8>, s: &str) {
        out.extend_from_slice(&(s.len() as u64).to_le_bytes());
        out.extend_from_slice(s.as_bytes());
    }

    #[test]
    fn reads_the_keys_it_needs_and_skips_the_rest() {
        let mut file = b"GGUF".to_vec();
        file.extend_from_slice(&3u32.to_le_bytes());
        file.extend_from_slice(&0u64.to_le_bytes());
        file.extend_from_slice(&5u64.to_le_bytes());
        string(&mut file, "tokenizer.ggml.tokens");
        file.extend_from_slice(&9u32.to_le_bytes());
        file.extend_from_slice(&8u32.to_le_bytes());
        file.extend_from_slice(&2u64.to_le_bytes());
        string(&mut file, "a");
        string(&mut file, "bc");
        string(&mut file, "general.architecture");
        file.extend_from_slice(&8u32.to_le_bytes());
        string(&mut file, "llama");
        string(&mut file, "llama.context_length");
        file.extend_from_slice(&4u32.to_le_bytes());
        file.extend_from_slice(&8192u32.to_le_bytes());
        string(&mut file, "general.file_type");
        file.extend_from_slice(&4u32.to_le_bytes());
        file.extend_from_slice(&3u32.to_le_bytes());
        string(&mut file, "llama.rope.freq_base");
        file.extend_from_slice(&6u32.to_le_bytes());
        file.extend_from_slice(&1.0f32.to_le_bytes());
        let info = read_info(&mut &file[..]).unwrap();
        assert_eq!(
            info,
            GgufInfo {
                architecture: "llama".into(),
                name: None,
                quantization: Some("Q4_1".into()),
                context_length: Some(8192),
            }
        );
        assert!(read_info(&mut &file[..40]).is_err(), "a cut header");
        assert!(read_info(&mut &b"GGML...."[..]).is_err());
    }
}
