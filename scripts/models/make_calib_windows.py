#!/usr/bin/python3
"""More calibration windows for the LMs: disjoint windows of each LM's own training text, so GPTQ,
AWQ and mixed precision's choices can be fitted on more than the committed 32 (lm.onnx, lm-constants,
lm-big: the same novels, characters and vocabulary) or 16 (lm-gemm-tied: their UTF-8 bytes).

    /usr/bin/python3 scripts/models/make_calib_windows.py --windows 128   # seconds

Writes .cache/calib/lm-calib-N.npy (int64 [N, 64], character ids) and lm-gemm-tied-calib-N.npy
(int64 [N, 64], bytes). Both come from the training split (the first 90 % of every novel), as the
committed calibration windows do; the eval windows come from the last 10 %, so they stay unseen.
A seed of its own (31) picks the windows; deterministic.

    /usr/bin/python3 scripts/models/make_calib_windows.py --eval 2048

also writes .cache/calib/lm-eval-N.npy and lm-gemm-tied-eval-N.npy (int64 [N, 65]): N disjoint windows
of the held-out last 10 % (seed 37), a larger evaluation sample than the committed 64 (32) windows, so a
perplexity difference of a tenth of a percent between two quantized models is resolved, not noise.
The held-out text holds 6,172 such windows.
"""

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import make_models as mm  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("austen_rdb", nargs="?", help="path of janeaustenr's data/Rdata.rdb")
    parser.add_argument("--windows", type=int, default=128)
    parser.add_argument("--eval", type=int, default=0, help="also N evaluation windows of the held-out text")
    parser.add_argument("--out-dir", default=os.path.join(mm.OUT, "..", ".cache", "calib"))
    args = parser.parse_args()
    books, _ = mm.load_corpus(mm.read_austen_rdb(args.austen_rdb))
    itos = mm.build_vocab(books)
    stoi = {ch: i for i, ch in enumerate(itos)}
    chars = np.concatenate([mm.encode(text[:int(len(text) * 0.9)], stoi) for text in books])
    # make_variants.py's byte-level split: the UTF-8 bytes of the same first 90 % of every novel.
    raw = np.concatenate(
        [np.frombuffer(text[:int(len(text) * 0.9)].encode("utf-8"), dtype=np.uint8) for text in books]
    ).astype(np.int64)
    os.makedirs(args.out_dir, exist_ok=True)
    for name, ids in (("lm-calib", chars), ("lm-gemm-tied-calib", raw)):
        windows = mm.disjoint_windows(ids, args.windows, mm.CONTEXT, np.random.RandomState(31))
        path = os.path.join(args.out_dir, f"{name}-{args.windows}.npy")
        np.save(path, windows)
        print(f"{windows.shape[0]} windows of {windows.shape[1]} ids -> {path}")
    if args.eval > 0:
        save_eval_windows(books, stoi, args.eval, args.out_dir)


def save_eval_windows(books, stoi, count, out_dir):
    held_chars = np.concatenate([mm.encode(text[int(len(text) * 0.9):], stoi) for text in books])
    held_raw = np.concatenate(
        [np.frombuffer(text[int(len(text) * 0.9):].encode("utf-8"), dtype=np.uint8) for text in books]
    ).astype(np.int64)
    for name, ids in (("lm-eval", held_chars), ("lm-gemm-tied-eval", held_raw)):
        windows = mm.disjoint_windows(ids, count, mm.CONTEXT + 1, np.random.RandomState(37))
        path = os.path.join(out_dir, f"{name}-{count}.npy")
        np.save(path, windows)
        print(f"{windows.shape[0]} evaluation windows of {windows.shape[1]} ids -> {path}")


if __name__ == "__main__":
    main()
