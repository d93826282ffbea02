#!/usr/bin/env node
// Converts a sentence-transformers BERT model (config.json, model.safetensors,
// vocab.txt, tokenizer.json), such as all-MiniLM-L6-v2, into a GGUF file that
// llama.cpp's BERT embedding graph loads (node-llama-cpp createEmbeddingContext):
// mean pooling, non-causal attention, WordPiece vocabulary. Weights stay F32.
// Mirrors llama.cpp's convert_hf_to_gguf.py for BertModel, without Python or torch.
//
// Usage: node infra/local/bert-to-gguf.mjs <model dir> <out.gguf>
import { closeSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import path from 'node:path';

const GGUF_VERSION = 3;
const ALIGNMENT = 32;
const TYPE = { UINT32: 4, INT32: 5, FLOAT32: 6, BOOL: 7, STRING: 8, ARRAY: 9 };
const GGML_TYPE_F32 = 0;
const TOKEN_NORMAL = 1;
const TOKEN_CONTROL = 3;
const POOLING_MEAN = 1;

/** Tensor names of HF's BertModel -> llama.cpp's (gguf-py tensor_mapping for MODEL_ARCH.BERT). */
function ggufName(name) {
  const fixed = {
    'embeddings.word_embeddings': 'token_embd',
    'embeddings.position_embeddings': 'position_embd',
    'embeddings.token_type_embeddings': 'token_types',
    'embeddings.LayerNorm': 'token_embd_norm',
  };
  const perBlock = {
    'attention.self.query': 'attn_q',
    'attention.self.key': 'attn_k',
    'attention.self.value': 'attn_v',
    'attention.output.dense': 'attn_output',
    'attention.output.LayerNorm': 'attn_output_norm',
    'intermediate.dense': 'ffn_up',
    'output.dense': 'ffn_down',
    'output.LayerNorm': 'layer_output_norm',
  };
  const bare = name.replace(/^bert\./, '');
  const suffix = bare.match(/\.(weight|bias)$/)?.[1];
  if (!suffix) return undefined;
  const stem = bare.slice(0, -(suffix.length + 1));
  if (fixed[stem]) return `${fixed[stem]}.${suffix}`;
  const block = stem.match(/^encoder\.layer\.(\d+)\.(.+)$/);
  if (block && perBlock[block[2]]) return `blk.${block[1]}.${perBlock[block[2]]}.${suffix}`;
  return undefined;
}

/** Tensors llama.cpp's embedding graph does not use. */
const SKIPPED = /^(bert\.)?(embeddings\.position_ids|pooler\.|cls\.)/;

/** safetensors: u64 header length, JSON header, then raw little-endian data. */
function readSafetensors(file) {
  const bytes = readFileSync(file);
  const headerLength = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + headerLength).toString('utf8'));
  const base = 8 + headerLength;
  const tensors = [];
  for (const [name, info] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const [start, end] = info.data_offsets;
    tensors.push({ name, dtype: info.dtype, shape: info.shape, data: bytes.subarray(base + start, base + end) });
  }
  return tensors;
}

class Writer {
  chunks = [];
  size = 0;
  push(buffer) {
    this.chunks.push(buffer);
    this.size += buffer.length;
  }
  u32(value) { const b = Buffer.alloc(4); b.writeUInt32LE(value); this.push(b); }
  i32(value) { const b = Buffer.alloc(4); b.writeInt32LE(value); this.push(b); }
  u64(value) { const b = Buffer.alloc(8); b.writeBigUInt64LE(BigInt(value)); this.push(b); }
  f32(value) { const b = Buffer.alloc(4); b.writeFloatLE(value); this.push(b); }
  str(value) { const b = Buffer.from(value, 'utf8'); this.u64(b.length); this.push(b); }
  pad() { const extra = (ALIGNMENT - (this.size % ALIGNMENT)) % ALIGNMENT; if (extra) this.push(Buffer.alloc(extra)); }
}

function writeValue(out, type, value) {
  if (type === TYPE.UINT32) out.u32(value);
  else if (type === TYPE.INT32) out.i32(value);
  else if (type === TYPE.FLOAT32) out.f32(value);
  else if (type === TYPE.BOOL) out.push(Buffer.from([value ? 1 : 0]));
  else if (type === TYPE.STRING) out.str(value);
  else throw new Error(`unsupported metadata type ${type}`);
}

export function convert(modelDir, outFile) {
  const config = JSON.parse(readFileSync(path.join(modelDir, 'config.json'), 'utf8'));
  if (config.model_type !== 'bert') throw new Error(`not a BERT model: model_type ${config.model_type}`);
  const vocab = readFileSync(path.join(modelDir, 'vocab.txt'), 'utf8').split('\n');
  if (vocab.at(-1) === '') vocab.pop();
  const tokenizer = JSON.parse(readFileSync(path.join(modelDir, 'tokenizer.json'), 'utf8'));
  const special = new Set((tokenizer.added_tokens ?? []).filter((token) => token.special).map((token) => token.content));
  const id = (token) => {
    const index = vocab.indexOf(token);
    if (index < 0) throw new Error(`vocab.txt has no ${token}`);
    return index;
  };
  // llama.cpp's WordPiece tokenizer marks a word's first piece with U+2581 instead of marking continuations with ##.
  const tokens = vocab.map((token) => (token.startsWith('[') && token.endsWith(']') ? token : token.startsWith('##') ? token.slice(2) : `\u2581${token}`));

  const metadata = [
    ['general.architecture', TYPE.STRING, 'bert'],
    ['general.name', TYPE.STRING, path.basename(modelDir)],
    ['general.alignment', TYPE.UINT32, ALIGNMENT],
    ['general.file_type', TYPE.UINT32, 0],
    ['bert.context_length', TYPE.UINT32, config.max_position_embeddings],
    ['bert.embedding_length', TYPE.UINT32, config.hidden_size],
    ['bert.feed_forward_length', TYPE.UINT32, config.intermediate_size],
    ['bert.block_count', TYPE.UINT32, config.num_hidden_layers],
    ['bert.attention.head_count', TYPE.UINT32, config.num_attention_heads],
    ['bert.attention.layer_norm_epsilon', TYPE.FLOAT32, config.layer_norm_eps],
    ['bert.attention.causal', TYPE.BOOL, false],
    ['bert.pooling_type', TYPE.UINT32, POOLING_MEAN],
    ['tokenizer.ggml.token_type_count', TYPE.UINT32, config.type_vocab_size ?? 1],
    ['tokenizer.ggml.model', TYPE.STRING, 'bert'],
    ['tokenizer.ggml.pre', TYPE.STRING, 'default'],
    ['tokenizer.ggml.bos_token_id', TYPE.UINT32, id('[CLS]')],
    ['tokenizer.ggml.eos_token_id', TYPE.UINT32, id('[SEP]')],
    ['tokenizer.ggml.seperator_token_id', TYPE.UINT32, id('[SEP]')],
    ['tokenizer.ggml.unknown_token_id', TYPE.UINT32, id('[UNK]')],
    ['tokenizer.ggml.padding_token_id', TYPE.UINT32, id('[PAD]')],
    ['tokenizer.ggml.mask_token_id', TYPE.UINT32, id('[MASK]')],
    ['tokenizer.ggml.add_bos_token', TYPE.BOOL, true],
    ['tokenizer.ggml.add_eos_token', TYPE.BOOL, true],
  ];

  const tensors = [];
  for (const tensor of readSafetensors(path.join(modelDir, 'model.safetensors'))) {
    if (SKIPPED.test(tensor.name)) continue;
    const name = ggufName(tensor.name);
    if (!name) throw new Error(`no GGUF name for tensor ${tensor.name}`);
    if (tensor.dtype !== 'F32') throw new Error(`tensor ${tensor.name} is ${tensor.dtype}; only F32 is converted`);
    tensors.push({ ...tensor, name });
  }

  const out = new Writer();
  out.push(Buffer.from('GGUF', 'ascii'));
  out.u32(GGUF_VERSION);
  out.u64(tensors.length);
  out.u64(metadata.length + 2);
  for (const [key, type, value] of metadata) {
    out.str(key);
    out.u32(type);
    writeValue(out, type, value);
  }
  out.str('tokenizer.ggml.tokens');
  out.u32(TYPE.ARRAY);
  out.u32(TYPE.STRING);
  out.u64(tokens.length);
  for (const token of tokens) out.str(token);
  out.str('tokenizer.ggml.token_type');
  out.u32(TYPE.ARRAY);
  out.u32(TYPE.INT32);
  out.u64(vocab.length);
  for (const token of vocab) out.i32(special.has(token) ? TOKEN_CONTROL : TOKEN_NORMAL);

  let offset = 0;
  for (const tensor of tensors) {
    out.str(tensor.name);
    out.u32(tensor.shape.length);
    // GGUF lists dimensions fastest-varying first: the reverse of safetensors' row-major shape.
    for (const dim of [...tensor.shape].reverse()) out.u64(dim);
    out.u32(GGML_TYPE_F32);
    out.u64(offset);
    tensor.offset = offset;
    offset += tensor.data.length + ((ALIGNMENT - (tensor.data.length % ALIGNMENT)) % ALIGNMENT);
  }
  out.pad();
  for (const tensor of tensors) {
    out.push(tensor.data);
    out.pad();
  }

  // Written under a temporary name and renamed, so a half-written file is never taken for the model.
  const partial = `${outFile}.partial`;
  const fd = openSync(partial, 'w');
  try {
    for (const chunk of out.chunks) writeSync(fd, chunk);
  } finally {
    closeSync(fd);
  }
  renameSync(partial, outFile);
  return { tensors: tensors.length, tokens: tokens.length };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [modelDir, outFile] = process.argv.slice(2);
  if (!modelDir || !outFile) {
    console.error('usage: node infra/local/bert-to-gguf.mjs <model dir> <out.gguf>');
    process.exit(2);
  }
  const { tensors, tokens } = convert(modelDir, outFile);
  console.error(`[model] wrote ${outFile}: ${tensors} tensors, ${tokens} tokens`);
}
