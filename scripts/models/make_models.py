#!/usr/bin/python3
"""Train and export quantkit's two small demo/test models: models/lm.onnx and models/cnn.onnx.

How to run (from the repository root, Debian 12 system Python, NOT a pyenv/venv python):

    apt-get install -y python3-torch python3-sklearn python3-numpy
    /usr/bin/python3 scripts/models/make_models.py            # both models (~6 min on 2 cores)
    /usr/bin/python3 scripts/models/make_models.py --only cnn # just the CNN (~15 s)
    npx tsx scripts/models/check-models.ts                    # re-check the files with ONNX Runtime
    /usr/bin/python3 scripts/models/make_models.py --only lm --lm-size big --out .cache/models
                                                              # the bigger LM (4 layers, d = 256) of
                                                              # scripts/measure/low-bit-table.ts, not committed

What it needs:
  * torch 1.13 (Debian's python3-torch; exporter opset 17 for LayerNormalization), scikit-learn, numpy.
  * The LM corpus: Jane Austen's six novels as shipped by Debian's r-cran-janeaustenr package
    (file .../janeaustenr/data/Rdata.rdb, an R lazy-load database). R itself is NOT needed: this
    script reads the R serialization directly. If the package is not installed, the script runs
    `apt-get download r-cran-janeaustenr` and unpacks the .deb with `dpkg-deb -x` (no R install),
    or pass --austen-rdb PATH.
  * The CNN data: sklearn.datasets.load_digits(), bundled in python3-sklearn (no download).

Deterministic: fixed seeds, a fixed number of optimizer steps (not a time budget), 2 threads.
Outputs (all under models/): lm.onnx, lm-vocab.json, lm-eval.npy, lm-calib.npy,
cnn.onnx, cnn-test-x.npy, cnn-test-y.npy, cnn-calib-x.npy, metrics.json.
"""

import argparse
import glob
import hashlib
import json
import math
import os
import random
import struct
import subprocess
import tempfile
import time
import zlib

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(REPO, "models")
OPSET = 17  # first opset with LayerNormalization; torch 1.13's newest
AUSTEN_RDB = "/usr/lib/R/site-library/janeaustenr/data/Rdata.rdb"

# ---------------------------------------------------------------- LM hyper-parameters
CONTEXT = 64
D_MODEL = 128
N_HEADS = 4
N_LAYERS = 2
D_MLP = 4 * D_MODEL
MIN_CHAR_COUNT = 20  # rarer characters map to the unknown id 0
LM_STEPS = 1400
LM_BATCH = 64
LM_LR = 3e-3
MASK_NEG = -1e4  # additive causal mask constant, as in real transformer exports
N_EVAL = 64
N_CALIB = 32
# --lm-size big: the same LM, wider and deeper (so that layer sensitivities differ), for the
# low-bit comparison (scripts/measure/low-bit-table.ts). Kept out of git (~9 MB): it is made on
# demand into a git-ignored folder. A 2× MLP and small batches keep training to ~10 minutes on 2 busy cores.
BIG_LM = {"D_MODEL": 256, "N_LAYERS": 4, "D_MLP": 512, "LM_STEPS": 600, "LM_BATCH": 16, "LM_LR": 2e-3}


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


# ---------------------------------------------------------------- corpus
def read_r_string_vectors(rdb_bytes):
    """Yield every character vector stored in an R lazy-load database (.rdb).

    An .rdb is a concatenation of records: 4-byte big-endian uncompressed length, then a zlib
    stream holding one R serialization (format 'X\\n' = XDR big-endian, version 2 or 3). The
    janeaustenr data objects are plain STRSXP (type 16) vectors of CHARSXP (type 9) lines.
    """
    pos = 0
    while pos < len(rdb_bytes):
        dec = zlib.decompressobj()
        raw = dec.decompress(rdb_bytes[pos + 4:])
        pos = len(rdb_bytes) - len(dec.unused_data)
        if raw[:2] != b"X\n":
            raise ValueError("not an XDR R serialization")
        p = 2
        version = struct.unpack(">i", raw[p:p + 4])[0]
        p += 12  # version, writer R version, minimal reader R version
        if version == 3:
            (enc_len,) = struct.unpack(">i", raw[p:p + 4])
            p += 4 + enc_len  # native encoding name
        flags, n = struct.unpack(">ii", raw[p:p + 8])
        p += 8
        if flags & 0xFF != 16:
            raise ValueError("expected a character vector (STRSXP)")
        lines = []
        for _ in range(n):
            cflags, length = struct.unpack(">ii", raw[p:p + 8])
            p += 8
            if cflags & 0xFF != 9:
                raise ValueError("expected CHARSXP")
            if length < 0:  # NA_character_
                lines.append("")
                continue
            lines.append(raw[p:p + length].decode("utf-8"))
            p += length
        yield lines


def read_austen_rdb(explicit):
    """The bytes of janeaustenr's Rdata.rdb: given path, installed package, or a fetched .deb."""
    if explicit or os.path.exists(AUSTEN_RDB):
        with open(explicit or AUSTEN_RDB, "rb") as f:
            return f.read()
    with tempfile.TemporaryDirectory(prefix="austen-") as tmp:
        subprocess.run(["apt-get", "download", "r-cran-janeaustenr"], cwd=tmp, check=True)
        deb = glob.glob(os.path.join(tmp, "r-cran-janeaustenr_*.deb"))[0]
        subprocess.run(["dpkg-deb", "-x", deb, os.path.join(tmp, "x")], check=True)
        with open(os.path.join(tmp, "x", AUSTEN_RDB.lstrip("/")), "rb") as f:
            return f.read()


def reflow(lines):
    """Join hard-wrapped lines into one line per paragraph (paragraphs end at blank lines)."""
    paragraphs, current = [], []
    for line in lines:
        line = line.strip()
        if line:
            current.append(line)
        elif current:
            paragraphs.append(" ".join(current))
            current = []
    if current:
        paragraphs.append(" ".join(current))
    return "\n".join(paragraphs) + "\n"


def load_corpus(data):
    books = [reflow(lines) for lines in read_r_string_vectors(data)]
    return books, hashlib.sha256(data).hexdigest()


def build_vocab(books):
    counts = {}
    for text in books:
        for ch in text:
            counts[ch] = counts.get(ch, 0) + 1
    kept = sorted(ch for ch, c in counts.items() if c >= MIN_CHAR_COUNT)
    itos = ["\ufffd"] + kept  # id 0: every rare character
    return itos


def encode(text, stoi):
    return np.array([stoi.get(ch, 0) for ch in text], dtype=np.int64)


# ---------------------------------------------------------------- LM model
class CausalSelfAttention(nn.Module):
    def __init__(self):
        super().__init__()
        self.q = nn.Linear(D_MODEL, D_MODEL)
        self.k = nn.Linear(D_MODEL, D_MODEL)
        self.v = nn.Linear(D_MODEL, D_MODEL)
        self.o = nn.Linear(D_MODEL, D_MODEL)
        causal = torch.triu(torch.ones(CONTEXT, CONTEXT, dtype=torch.bool), diagonal=1)
        # Additive mask (0 on/below the diagonal, -1e4 above) added to the scores before Softmax.
        self.register_buffer("mask", torch.zeros(CONTEXT, CONTEXT).masked_fill(causal, MASK_NEG))

    def forward(self, x):
        b, t, _ = x.shape
        dh = D_MODEL // N_HEADS

        def heads(y):
            return y.reshape(b, t, N_HEADS, dh).transpose(1, 2)  # [b, h, t, dh]

        q, k, v = heads(self.q(x)), heads(self.k(x)), heads(self.v(x))
        scores = torch.matmul(q, k.transpose(2, 3)) * (1.0 / math.sqrt(dh))
        scores = scores + self.mask[:t, :t]
        y = torch.matmul(torch.softmax(scores, dim=-1), v)
        return self.o(y.transpose(1, 2).reshape(b, t, D_MODEL))


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln1 = nn.LayerNorm(D_MODEL)
        self.attn = CausalSelfAttention()
        self.ln2 = nn.LayerNorm(D_MODEL)
        self.fc1 = nn.Linear(D_MODEL, D_MLP)
        self.fc2 = nn.Linear(D_MLP, D_MODEL)

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.fc2(F.gelu(self.fc1(self.ln2(x))))


class CharTransformer(nn.Module):
    def __init__(self, vocab):
        super().__init__()
        self.tok = nn.Embedding(vocab, D_MODEL)
        self.pos = nn.Parameter(torch.zeros(CONTEXT, D_MODEL))
        self.blocks = nn.ModuleList([Block() for _ in range(N_LAYERS)])
        self.ln_f = nn.LayerNorm(D_MODEL)
        self.head = nn.Linear(D_MODEL, vocab)  # untied: the head stays a MatMul with its own weight
        nn.init.normal_(self.pos, std=0.02)
        nn.init.normal_(self.tok.weight, std=0.02)

    def forward(self, input_ids):
        t = input_ids.shape[1]
        x = self.tok(input_ids) + self.pos[:t]
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_f(x))


def bits_per_char(model, windows):
    """Mean next-character cross entropy, in bits, over every position of [N, 65] windows."""
    model.eval()
    with torch.no_grad():
        w = torch.from_numpy(windows)
        logits = model(w[:, :-1])
        nll = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), w[:, 1:].reshape(-1))
    return nll.item() / math.log(2)


def disjoint_windows(ids, count, length, rng):
    """`count` non-overlapping windows of `length` ids at random offsets (sorted, reproducible)."""
    slots = len(ids) // length
    picks = np.sort(rng.choice(slots, size=count, replace=False))
    return np.stack([ids[s * length:(s + 1) * length] for s in picks]).astype(np.int64)


def make_lm(args, metrics):
    seed_everything(1234)
    books, rdb_sha = load_corpus(read_austen_rdb(args.austen_rdb))
    itos = build_vocab(books)
    stoi = {ch: i for i, ch in enumerate(itos)}
    # Held-out split: the last 10 % of every novel is validation/eval text, the rest is training.
    train_parts, val_parts = [], []
    for text in books:
        cut = int(len(text) * 0.9)
        train_parts.append(encode(text[:cut], stoi))
        val_parts.append(encode(text[cut:], stoi))
    train_ids = np.concatenate(train_parts)
    val_ids = np.concatenate(val_parts)
    rng = np.random.RandomState(7)
    eval_windows = disjoint_windows(val_ids, N_EVAL, CONTEXT + 1, rng)
    # A larger validation sample for reporting (eval windows are a subset-sized probe of it).
    val_windows = disjoint_windows(val_ids, 1024, CONTEXT + 1, np.random.RandomState(8))
    calib = disjoint_windows(train_ids, N_CALIB, CONTEXT, np.random.RandomState(9))
    print(f"[lm] corpus: {len(books)} novels, {len(train_ids)} train / {len(val_ids)} val chars, "
          f"vocab {len(itos)} (rdb sha256 {rdb_sha[:16]}...)")

    model = CharTransformer(len(itos))
    n_params = sum(p.numel() for p in model.parameters())
    print(f"[lm] parameters: {n_params}")
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and n != "pos"]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2 or n == "pos"]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05},
                             {"params": no_decay, "weight_decay": 0.0}], lr=LM_LR, betas=(0.9, 0.98))
    warmup = 100

    def lr_at(step):  # linear warm-up, then cosine decay to 10 %
        if step < warmup:
            return LM_LR * (step + 1) / warmup
        frac = (step - warmup) / max(1, LM_STEPS - warmup)
        return LM_LR * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))

    batch_rng = np.random.RandomState(42)
    offsets_max = len(train_ids) - CONTEXT - 1
    t0 = time.time()
    for step in range(LM_STEPS):
        model.train()
        starts = batch_rng.randint(0, offsets_max, size=LM_BATCH)
        batch = torch.from_numpy(np.stack([train_ids[s:s + CONTEXT + 1] for s in starts]))
        logits = model(batch[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1))
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 200 == 0 or step == LM_STEPS - 1:
            print(f"[lm] step {step:5d} train loss {loss.item() / math.log(2):.3f} bits/char, "
                  f"val {bits_per_char(model, val_windows):.3f} bits/char, {time.time() - t0:.0f} s",
                  flush=True)
    train_seconds = time.time() - t0

    model.eval()
    eval_bpc = bits_per_char(model, eval_windows)
    val_bpc = bits_per_char(model, val_windows)
    print(f"[lm] eval windows ({N_EVAL}x{CONTEXT}): {eval_bpc:.4f} bits/char, "
          f"perplexity {2 ** eval_bpc:.4f}; val sample (1024 windows): {val_bpc:.4f} bits/char; "
          f"training {train_seconds:.0f} s")

    path = os.path.join(OUT, f"{args.lm_name}.onnx")
    dummy = torch.from_numpy(eval_windows[:2, :CONTEXT])
    torch.onnx.export(model, (dummy,), path, opset_version=OPSET, input_names=["input_ids"],
                      output_names=["logits"], do_constant_folding=True,
                      dynamic_axes={"input_ids": {0: "batch", 1: "seq"},
                                    "logits": {0: "batch", 1: "seq"}})
    np.save(os.path.join(OUT, f"{args.lm_name}-eval.npy"), eval_windows)
    np.save(os.path.join(OUT, f"{args.lm_name}-calib.npy"), calib)
    with open(os.path.join(OUT, f"{args.lm_name}-vocab.json"), "w", encoding="utf-8") as f:
        json.dump({str(i): ch for i, ch in enumerate(itos)}, f, ensure_ascii=False, indent=0)
        f.write("\n")
    metrics[args.lm_name.replace("-", "_")] = {
        "parameters": n_params, "vocab": len(itos), "context": CONTEXT, "steps": LM_STEPS,
        "batch": LM_BATCH, "train_seconds": round(train_seconds, 1),
        "eval_bits_per_char": round(eval_bpc, 6), "eval_perplexity": round(2 ** eval_bpc, 6),
        "val1024_bits_per_char": round(val_bpc, 6), "onnx_bytes": os.path.getsize(path),
        "corpus_rdb_sha256": rdb_sha,
    }


# ---------------------------------------------------------------- CNN
class DigitsCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(16)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(32)
        self.fc1 = nn.Linear(32 * 4 * 4, 64)
        self.fc2 = nn.Linear(64, 10)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        x = torch.flatten(F.max_pool2d(x, 2), 1)
        return self.fc2(F.relu(self.fc1(x)))


def make_cnn(metrics):
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    seed_everything(1234)
    digits = load_digits()
    x = (digits.images.astype(np.float32) / 16.0).reshape(-1, 1, 8, 8)  # pixel values are 0..16
    y = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, train_size=1300, test_size=497, random_state=0, stratify=y)
    calib_x = x_train[np.random.RandomState(3).choice(len(x_train), 128, replace=False)]

    model = DigitsCNN()
    n_params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    xt, yt = torch.from_numpy(x_train), torch.from_numpy(y_train)
    rng = np.random.RandomState(11)
    t0 = time.time()
    for epoch in range(30):
        model.train()
        order = torch.from_numpy(rng.permutation(len(xt)))
        for i in range(0, len(order), 32):
            idx = order[i:i + 32]
            loss = F.cross_entropy(model(xt[idx]), yt[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    train_seconds = time.time() - t0
    model.eval()
    with torch.no_grad():
        acc = (model(torch.from_numpy(x_test)).argmax(1).numpy() == y_test).mean()
    print(f"[cnn] parameters: {n_params}; test accuracy {acc * 100:.2f} % "
          f"({int(round(acc * len(y_test)))}/{len(y_test)}); training {train_seconds:.1f} s")

    path = os.path.join(OUT, "cnn.onnx")
    # PRESERVE + eval(): the exporter's eval-mode peephole would fold BatchNormalization into
    # the Conv; the graph must keep the BN nodes (the conv+bn folding pass is quantkit's job).
    torch.onnx.export(model, (torch.from_numpy(x_test[:2]),), path, opset_version=OPSET,
                      input_names=["input"], output_names=["logits"],
                      training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=True,
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    np.save(os.path.join(OUT, "cnn-test-x.npy"), np.ascontiguousarray(x_test))
    np.save(os.path.join(OUT, "cnn-test-y.npy"), y_test)
    np.save(os.path.join(OUT, "cnn-calib-x.npy"), np.ascontiguousarray(calib_x))
    metrics["cnn"] = {
        "parameters": n_params, "train": len(y_train), "test": len(y_test), "epochs": 30,
        "train_seconds": round(train_seconds, 1), "test_accuracy": round(float(acc), 6),
        "onnx_bytes": os.path.getsize(path),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=["lm", "cnn"], help="make just one of the two models")
    parser.add_argument("--austen-rdb", help="path of janeaustenr's data/Rdata.rdb")
    parser.add_argument("--lm-size", choices=["small", "big"], default="small",
                        help="big: 4 layers, d = 256 (BIG_LM), written as lm-big.* into --out")
    parser.add_argument("--out", help="output folder (default models/)")
    args = parser.parse_args()
    global OUT
    if args.out:
        OUT = os.path.abspath(args.out)
    args.lm_name = "lm"
    if args.lm_size == "big":
        globals().update(BIG_LM)
        args.lm_name = "lm-big"
    torch.set_num_threads(2)
    torch.use_deterministic_algorithms(True)
    os.makedirs(OUT, exist_ok=True)
    metrics_path = os.path.join(OUT, "metrics.json")
    metrics = json.load(open(metrics_path)) if os.path.exists(metrics_path) else {}
    metrics["torch"] = torch.__version__
    metrics["opset"] = OPSET
    if args.only in (None, "cnn"):
        make_cnn(metrics)
    if args.only in (None, "lm"):
        make_lm(args, metrics)
    with open(metrics_path, "w") as f:
        json.dump(metrics, f, indent=2, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
