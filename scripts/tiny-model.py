"""Writes a tiny llama-architecture GGUF with the default model's tokenizer and random weights.

usage: python scripts/tiny-model.py SOURCE.gguf OUT.gguf [--layers 2] [--embd 64] [--seed 1]

The result speaks the same tokens and chat template as SOURCE (SmolLM2's), so every request
that works on the default model works on it, but its forward pass costs a few microseconds of
arithmetic instead of ~100 ms: benchmarks use it to measure what surrounds the model (HTTP,
routing, payments), and tests use it as "another model" whose answers differ from the
default's. Its output is gibberish by construction. The same arguments give the same bytes,
hence the same CID.
"""

import argparse

import gguf
import numpy as np

# Everything the tokenizer and chat template need, copied verbatim from the source model.
COPIED_PREFIXES = ("tokenizer.",)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("source")
    ap.add_argument("out")
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--embd", type=int, default=64)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--ff", type=int, default=128)
    ap.add_argument("--context", type=int, default=8192)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    if args.embd % args.heads or args.heads % args.kv_heads:
        raise SystemExit("embd must divide by heads, and heads by kv-heads")

    source = gguf.GGUFReader(args.source)
    vocab = len(source.fields["tokenizer.ggml.tokens"].data)
    writer = gguf.GGUFWriter(args.out, "llama")
    writer.add_name(f"agora-tiny-{args.layers}x{args.embd}-seed{args.seed}")
    writer.add_block_count(args.layers)
    writer.add_context_length(args.context)
    writer.add_embedding_length(args.embd)
    writer.add_feed_forward_length(args.ff)
    writer.add_head_count(args.heads)
    writer.add_head_count_kv(args.kv_heads)
    writer.add_rope_freq_base(100000.0)
    writer.add_rope_dimension_count(args.embd // args.heads)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_vocab_size(vocab)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    for name, field in source.fields.items():
        if name.startswith(COPIED_PREFIXES):
            copy_field(writer, name, field)

    rng = np.random.default_rng(args.seed)
    head_dim = args.embd // args.heads
    kv = args.kv_heads * head_dim

    def weight(rows, cols):
        # numpy shape (rows, cols) is GGUF shape [cols, rows]: `cols` is the input dimension.
        return (rng.standard_normal((rows, cols)) / np.sqrt(cols)).astype(np.float32)

    writer.add_tensor("token_embd.weight", weight(vocab, args.embd))
    writer.add_tensor("output_norm.weight", np.ones(args.embd, dtype=np.float32))
    for layer in range(args.layers):
        block = f"blk.{layer}"
        writer.add_tensor(f"{block}.attn_norm.weight", np.ones(args.embd, dtype=np.float32))
        writer.add_tensor(f"{block}.attn_q.weight", weight(args.embd, args.embd))
        writer.add_tensor(f"{block}.attn_k.weight", weight(kv, args.embd))
        writer.add_tensor(f"{block}.attn_v.weight", weight(kv, args.embd))
        writer.add_tensor(f"{block}.attn_output.weight", weight(args.embd, args.embd))
        writer.add_tensor(f"{block}.ffn_norm.weight", np.ones(args.embd, dtype=np.float32))
        writer.add_tensor(f"{block}.ffn_gate.weight", weight(args.ff, args.embd))
        writer.add_tensor(f"{block}.ffn_up.weight", weight(args.ff, args.embd))
        writer.add_tensor(f"{block}.ffn_down.weight", weight(args.embd, args.ff))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def copy_field(writer, name, field):
    """Copies one key-value pair of a GGUFReader into a GGUFWriter, types unchanged."""
    kind = field.types[0]
    if kind == gguf.GGUFValueType.ARRAY:
        writer.add_array(name, field.contents())
    elif kind == gguf.GGUFValueType.STRING:
        writer.add_string(name, field.contents())
    else:
        writer.add_key_value(name, field.contents(), kind)


if __name__ == "__main__":
    main()
