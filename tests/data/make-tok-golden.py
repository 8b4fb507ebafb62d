#!/usr/bin/env python3
"""make-tok-golden.py — golden token ids from llama.cpp for the tokenizer corpus.

    tests/data/make-tok-golden.py LLAMA_TOKENIZE DATA_DIR [OUT_DIR]

LLAMA_TOKENIZE is llama.cpp's llama-tokenize (the reference); DATA_DIR holds
the vocabulary GGUFs that tests/data/npm-vocab-to-gguf.mjs writes. For each
vocabulary it writes OUT_DIR/<vocab>.txt (default tests/data/tok-golden/),
one line per case:

    MODE <TAB> HEX(INPUT BYTES) <TAB> IDS (space-separated)

MODE is "plain" (no BOS, special-token text is text), "special" (special
tokens parsed) or "bos" (BOS/EOS as the model's add_bos/add_eos say). The
cases are every line of tests/data/tok-corpus/*.txt (with \\n \\t \\xHH \\u{H}
escapes decoded) and the long synthetic inputs below. test-tok reads these
files; run this script again only when the corpus changes.

To keep it quick, cases without a '<' are tokenized in one llama-tokenize run
per vocabulary, joined by a control token with special parsing on: llama.cpp
tokenizes each text fragment between special tokens on its own (and, for
SentencePiece, as if it started the text), so the ids between separators are
exactly those of a run on the case alone. Cases with a '<' (which may contain
special-token text) run alone.
"""
import os
import re
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
SEPARATORS = {  # vocab -> (control token text, its id)
    'llama2': ('</s>', 2),
    'llama3': ('<|end_of_text|>', 128001),
    'qwen3': ('<|endoftext|>', 151643),
    'gpt2': ('<|endoftext|>', 50256),
    'gpt2-default': ('<|endoftext|>', 50256),
    'gpt2-smollm': ('<|endoftext|>', 50256),
}


def unescape(line):
    out = bytearray()
    i = 0
    while i < len(line):
        c = line[i]
        if c != '\\':
            out += c.encode('utf-8')
            i += 1
            continue
        n = line[i + 1]
        simple = {'n': b'\n', 'r': b'\r', 't': b'\t', 'v': b'\v', 'f': b'\f', '0': b'\0', '\\': b'\\'}
        if n in simple:
            out += simple[n]
            i += 2
        elif n == 'x':
            out.append(int(line[i + 2:i + 4], 16))
            i += 4
        elif n == 'u':
            m = re.match(r'\\u\{([0-9A-Fa-f]+)\}', line[i:])
            out += chr(int(m.group(1), 16)).encode('utf-8', 'surrogatepass')
            i += len(m.group(0))
        else:
            out += b'\\'
            i += 1
    return bytes(out)


def corpus():
    cases = []
    d = os.path.join(HERE, 'tok-corpus')
    for name in sorted(os.listdir(d)):
        with open(os.path.join(d, name), encoding='utf-8') as f:
            for line in f.read().split('\n'):
                if line.startswith('#') or line == '':
                    continue
                cases.append(unescape(line))
    # long and repetitive inputs (a linear-time check as much as an id check)
    rnd = 12345
    alphabet = 'abcdefghij KLMNOP 0123 .,;!?\n\t\'"é中🦙'
    mixed = []
    for _ in range(4000):
        rnd = (rnd * 1103515245 + 12345) % (1 << 31)
        mixed.append(alphabet[rnd % len(alphabet)])
    longs = ['a' * 10000, '\U0001F999' * 300, ' ' * 5000, '\n' * 2000, '1' * 3000,
             'ab ' * 1000, 'xyz' * 3334, ''.join(mixed), '中' * 2000, 'Hello world! ' * 500]
    cases += [s.encode('utf-8') for s in longs]
    cases.append(b'\x80' * 1000)
    cases.append(b'')
    return cases


def run(tool, model, data, args):
    with tempfile.NamedTemporaryFile(delete=False) as f:
        f.write(data)
        path = f.name
    try:
        env = dict(os.environ)
        env['LD_LIBRARY_PATH'] = os.path.dirname(tool) + ':' + env.get('LD_LIBRARY_PATH', '')
        p = subprocess.run([tool, '-m', model, '-f', path, '--ids', '--no-escape', '--log-disable'] + args,
                           capture_output=True, env=env, timeout=600)
        lines = [l for l in p.stdout.decode('utf-8', 'replace').split('\n') if l.startswith('[')]
        if p.returncode != 0 or not lines:
            return None  # llama.cpp failed on this input
        body = lines[-1].strip()[1:-1]
        return [int(x) for x in body.split(',')] if body.strip() else []
    finally:
        os.unlink(path)


def golden(tool, data_dir, vocab, cases):
    model = os.path.join(data_dir, vocab + '.gguf')
    sep_text, sep_id = SEPARATORS[vocab]
    out = []
    batch = [c for c in cases if b'<' not in c]
    alone = [c for c in cases if b'<' in c]
    results = {}
    failed = []

    def batched(part):
        # one run for the whole part; halve it when llama.cpp fails on one case
        ids = run(tool, model, sep_text.encode().join(part), ['--no-bos'])
        if ids is None:
            if len(part) == 1:
                failed.append(part[0])
                return
            batched(part[:len(part) // 2])
            batched(part[len(part) // 2:])
            return
        groups = [[]]
        for i in ids:
            if i == sep_id:
                groups.append([])
            else:
                groups[-1].append(i)
        if len(groups) != len(part):
            sys.exit(f'{vocab}: {len(groups)} groups for {len(part)} cases')
        for c, g in zip(part, groups):
            results[('plain', c)] = g

    batched(batch)
    for c in failed:
        print(f'{vocab}: llama.cpp fails on {c[:40]!r}: no golden line', file=sys.stderr)
    jobs = [('plain', c, ['--no-bos', '--no-parse-special']) for c in alone]
    jobs += [('special', c, ['--no-bos']) for c in alone]
    jobs += [('bos', c, ['--no-parse-special']) for c in cases[:12]]
    with ThreadPoolExecutor(2) as ex:
        for (mode, c, _), r in zip(jobs, ex.map(lambda j: run(tool, model, j[1], j[2]), jobs)):
            if r is not None:
                results[(mode, c)] = r
    for (mode, c), r in results.items():
        out.append(f'{mode}\t{c.hex()}\t{" ".join(map(str, r))}')
    return out


def main():
    if len(sys.argv) < 3:
        sys.exit('usage: make-tok-golden.py LLAMA_TOKENIZE DATA_DIR [OUT_DIR]')
    tool, data_dir = sys.argv[1], sys.argv[2]
    out_dir = sys.argv[3] if len(sys.argv) > 3 else os.path.join(HERE, 'tok-golden')
    os.makedirs(out_dir, exist_ok=True)
    cases = corpus()
    for vocab in SEPARATORS:
        if not os.path.exists(os.path.join(data_dir, vocab + '.gguf')):
            continue
        lines = golden(tool, data_dir, vocab, cases)
        with open(os.path.join(out_dir, vocab + '.txt'), 'w') as f:
            f.write('\n'.join(lines) + '\n')
        print(f'{vocab}: {len(lines)} golden lines')


if __name__ == '__main__':
    main()
