"""Benchmark: BPE training time and encoding throughput on the shipped corpus (data/jargon.txt).

Compares, at vocabulary sizes 1k, 4k and 16k:
- our incremental trainer (``roadmap_lib.tokenizers.bpe.train_merges``: pair counts updated in place, lazy heap),
- the naive trainer (``roadmap_lib.tokenizers.bpe.naive_merges``: every pair recounted after every merge),
  run on the full corpus where it finishes in reasonable time (1k and 4k by default) and not
  extrapolated,
- Hugging Face ``tokenizers`` (Rust, BpeTrainer with the same settings);
and encoding throughput of our pure-Python encoder (with and without its pre-token cache) and of
``tokenizers``. Every size asserts that the naive, incremental and ``tokenizers`` merges agree.

    python benchmarks/bench_tokenizers.py [--naive-sizes 1024 4096] [--out ...]

Writes benchmarks/results/tokenizers.json. The machine is shared: compare ratios within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import regex

import roadmap_lib
from roadmap_lib import data_path
from roadmap_lib.fileio import atomic_write_text
from roadmap_lib.tokenizers.bpe import BPETokenizer, count_words, naive_merges, train_merges
from roadmap_lib.tokenizers.byte_level import to_chars

OUT = Path(__file__).resolve().parent / "results" / "tokenizers.json"


def machine_info() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import tokenizers

    return {
        "platform": platform.platform(), "python": platform.python_version(), "cpu": cpu,
        "cpu_count": os.cpu_count(), "load_average_at_start": list(os.getloadavg()),
        "tokenizers": tokenizers.__version__, "regex": regex.__version__,
        "roadmap_lib": roadmap_lib.__version__,
        "rayon_threads": os.environ.get("RAYON_NUM_THREADS", "default"),
        "note": "shared CPU (other jobs running): compare ratios within this run",
    }


def timed(fn):
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - t0, time.process_time() - c0


def hf_train(text: str, vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([text], trainer)
    return tok


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1024, 4096, 16384])
    ap.add_argument("--naive-sizes", type=int, nargs="*", default=[1024, 4096])
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)

    text = data_path("jargon.txt").read_text(encoding="utf-8")
    nbytes = len(text.encode("utf-8"))
    result = {"corpus": "data/jargon.txt", "corpus_bytes": nbytes, "machine": machine_info(),
              "sizes": {}}
    counts, wall, cpu = timed(lambda: count_words([text]))
    result["pre_tokenization"] = {"wall_s": wall, "cpu_s": cpu, "unique_words": len(counts),
                                  "words": sum(counts.values())}
    print(f"pre-tokenisation: {len(counts)} unique words, {wall:.2f} s")
    for v in args.sizes:
        n = v - 256
        row = {}
        merges, wall, cpu = timed(lambda: train_merges(counts, n))
        row["incremental_train"] = {"wall_s": wall, "cpu_s": cpu}
        print(f"[{v}] incremental: {wall:.2f} s")
        hf, wall, cpu = timed(lambda: hf_train(text, v))
        row["hf_train_including_pretokenization"] = {"wall_s": wall, "cpu_s": cpu}
        theirs = json.loads(hf.to_str())["model"]["merges"]
        vocab = {i: bytes([i]) for i in range(256)}
        for k, (a, b) in enumerate(merges):
            vocab[256 + k] = vocab[a] + vocab[b]
        row["merges_equal_hf"] = theirs == [[to_chars(vocab[a]), to_chars(vocab[b])]
                                            for a, b in merges]
        print(f"[{v}] tokenizers: {wall:.2f} s, same merges: {row['merges_equal_hf']}")
        if v in args.naive_sizes:
            naive, wall, cpu = timed(lambda: naive_merges(counts, n))
            row["naive_train"] = {"wall_s": wall, "cpu_s": cpu, "corpus": "full"}
            row["naive_equals_incremental"] = naive == merges
            row["speedup_incremental_vs_naive_cpu"] = cpu / row["incremental_train"]["cpu_s"]
            print(f"[{v}] naive: {wall:.1f} s, speed-up {row['speedup_incremental_vs_naive_cpu']:.0f}x")
        else:
            row["naive_train"] = None  # not run (too slow); not extrapolated
        # Encoding the whole corpus: ours with a cold cache, then warm; without cache; tokenizers.
        tok = BPETokenizer()
        tok.vocab, tok.ranks = vocab, {p: (k, 256 + k) for k, p in enumerate(merges)}
        tok._reset()
        ids, wall, cpu = timed(lambda: tok.encode(text))
        row["encode_cold_cache"] = {"wall_s": wall, "cpu_s": cpu, "MB_per_s_cpu": nbytes / cpu / 1e6,
                                    "tokens": len(ids), "bytes_per_token": nbytes / len(ids)}
        _, wall, cpu = timed(lambda: tok.encode(text))
        row["encode_warm_cache"] = {"wall_s": wall, "cpu_s": cpu, "MB_per_s_cpu": nbytes / cpu / 1e6}

        def no_cache():
            out = []
            for piece in tok._pat.findall(text):
                out.extend(tok._bpe(piece))
            return out

        slow_ids, wall, cpu = timed(no_cache)
        row["encode_no_cache"] = {"wall_s": wall, "cpu_s": cpu, "MB_per_s_cpu": nbytes / cpu / 1e6}
        enc, wall, cpu = timed(lambda: hf.encode(text))
        row["hf_encode"] = {"wall_s": wall, "cpu_s": cpu, "MB_per_s_wall": nbytes / wall / 1e6}
        lines = text.splitlines(keepends=True)
        _, wall, cpu = timed(lambda: hf.encode_batch(lines))
        row["hf_encode_batch_lines"] = {"wall_s": wall, "cpu_s": cpu,
                                        "MB_per_s_wall": nbytes / wall / 1e6}
        row["same_token_count_as_hf"] = len(enc.ids) == len(ids) == len(slow_ids)
        print(f"[{v}] encode: {row['encode_cold_cache']['MB_per_s_cpu']:.2f} MB/s cold, "
              f"{row['encode_warm_cache']['MB_per_s_cpu']:.2f} warm, "
              f"{row['encode_no_cache']['MB_per_s_cpu']:.2f} no cache, "
              f"tokenizers {row['hf_encode']['MB_per_s_wall']:.2f} MB/s one string, "
              f"{row['hf_encode_batch_lines']['MB_per_s_wall']:.2f} MB/s batch of lines")
        result["sizes"][str(v)] = row
    result["machine"]["load_average_at_end"] = list(os.getloadavg())
    atomic_write_text(args.out, json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
