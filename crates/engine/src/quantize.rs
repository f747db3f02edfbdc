//! Requantizing a GGUF through llama.cpp: how tests and benches make a cheaper copy of a model
//! (a cheating provider's, or a second model to govern).

use std::{ffi::CString, os::unix::ffi::OsStrExt, path::Path};

use crate::Error;

/// A quantization llama.cpp can requantize into without an importance matrix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quantization {
    /// 4-bit, one scale per block of 32.
    Q4_0,
    /// 8-bit, one scale per block of 32.
    Q8_0,
    /// 2-bit k-quant (large quality loss).
    Q2K,
}

impl std::str::FromStr for Quantization {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "q4_0" => Ok(Quantization::Q4_0),
            "q8_0" => Ok(Quantization::Q8_0),
            "q2_k" => Ok(Quantization::Q2K),
            other => Err(format!("unknown quantization '{other}' (q4_0, q8_0, q2_k)")),
        }
    }
}

/// Writes `input` requantized to `kind` at `output`, using `threads` threads.
pub fn requantize(
    input: &Path,
    output: &Path,
    kind: Quantization,
    threads: u32,
) -> Result<(), Error> {
    // llama.cpp needs its backend up before it touches tensors.
    crate::engine::backend()?;
    let path = |p: &Path| {
        CString::new(p.as_os_str().as_bytes()).map_err(|_| Error::Load {
            path: p.to_path_buf(),
            reason: "the path contains a NUL byte".into(),
        })
    };
    let (input_c, output_c) = (path(input)?, path(output)?);
    let ftype = match kind {
        Quantization::Q4_0 => llama_cpp_sys_2::LLAMA_FTYPE_MOSTLY_Q4_0,
        Quantization::Q8_0 => llama_cpp_sys_2::LLAMA_FTYPE_MOSTLY_Q8_0,
        Quantization::Q2K => llama_cpp_sys_2::LLAMA_FTYPE_MOSTLY_Q2_K,
    };
    // SAFETY: the defaults come from llama.cpp itself; the two paths are valid NUL-terminated
    // strings that outlive the call, and the params struct is passed by pointer to a local.
    let status = unsafe {
        let mut params = llama_cpp_sys_2::llama_model_quantize_default_params();
        params.nthread = i32::try_from(threads).unwrap_or(1);
        params.ftype = ftype;
        params.allow_requantize = true;
        llama_cpp_sys_2::llama_model_quantize(input_c.as_ptr(), output_c.as_ptr(), &params)
    };
    if status != 0 {
        return Err(Error::Load {
            path: input.to_path_buf(),
            reason: format!("llama.cpp could not requantize it to {kind:?} (status {status})"),
        });
    }
    Ok(())
}
