#!/usr/bin/python3
"""Train and export quantkit's robustness variants: models of the same kinds as models/lm.onnx and
models/cnn.onnx, but exported differently, so the passes are checked on graphs they were not
written against. Outputs under test/fixtures/variants/ (see the README.md there).

How to run (from the repository root, Debian 12 system Python; ~4 min on 2 busy cores):

    /usr/bin/python3 scripts/models/make_variants.py [--austen-rdb PATH] [--only NAME ...]

  lm-gemm-tied   byte-level (256) char LM, projections are nn.Linear on 2-D [B*T, d] inputs
                 (Gemm transB=1), LM head tied to the token embedding, tanh GELU, opset 14
                 (LayerNorm decomposed into ReduceMean/Sub/Pow/Sqrt/Div)
  lm-constants   char LM on models/lm.onnx's vocabulary, opset 13, every weight in a Constant
                 node (no initializers), causal mask built in-graph (Where with -inf), one
                 LayerNorm output channel scaled x20 with the next Linear compensating
                 (an activation-outlier channel; the function is unchanged)
  cnn-residual   digits CNN: Resize 8x8 -> 16x16 in-graph, residual Add blocks, depthwise conv,
                 squeeze-excite (GlobalAveragePool, 1x1 Conv, Relu, 1x1 Conv, Sigmoid, Mul),
                 BatchNormalization kept, opset 13
  cnn-opset11    plain Conv-BN-Relu digits CNN exported at opset 11

Data: the same sources and splits as make_models.py (imported from it): janeaustenr's novels and
sklearn's digits. The CNN variants are evaluated on models/cnn-test-*.npy and calibrated on
models/cnn-calib-x.npy, lm-constants on models/lm-eval.npy / lm-calib.npy (this script checks
that it recomputes those files exactly); lm-gemm-tied has its own byte-level windows here.
"""

import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_models as mm  # noqa: E402  (same corpus reader, vocabulary, splits and windows)

REPO = mm.REPO
OUT = os.path.join(REPO, "test", "fixtures", "variants")
MODELS = os.path.join(REPO, "models")

CONTEXT = 64
D_MODEL = 64
N_HEADS = 4
D_MLP = 4 * D_MODEL
LM_STEPS = 700
LM_BATCH = 48
LM_LR = 4e-3
OUTLIER_CHANNEL = 5
OUTLIER_SCALE = 20.0
N_EVAL = 32
N_CALIB = 16


# ---------------------------------------------------------------- shared LM training
def train_lm(model, train_ids, val_windows, tag):
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and "pos" not in n]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2 or "pos" in n]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05},
                             {"params": no_decay, "weight_decay": 0.0}], lr=LM_LR, betas=(0.9, 0.98))
    warmup = 60

    def lr_at(step):
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
        if step % 100 == 0 or step == LM_STEPS - 1:
            print(f"[{tag}] step {step:4d} train {loss.item() / math.log(2):.3f} bits/char, "
                  f"val {mm.bits_per_char(model, val_windows):.3f}, {time.time() - t0:.0f} s", flush=True)
    return time.time() - t0


def export_lm(model, path, opset, example):
    torch.onnx.export(model, (example,), path, opset_version=opset, input_names=["input_ids"],
                      output_names=["logits"], do_constant_folding=True,
                      dynamic_axes={"input_ids": {0: "batch", 1: "seq"},
                                    "logits": {0: "batch", 1: "seq"}})


# ---------------------------------------------------------------- (a) lm-gemm-tied
class GemmAttention(nn.Module):
    """Projections read [B*T, d]: torch exports nn.Linear on a 2-D input as Gemm(transB=1)."""

    def __init__(self):
        super().__init__()
        self.q = nn.Linear(D_MODEL, D_MODEL)
        self.k = nn.Linear(D_MODEL, D_MODEL)
        self.v = nn.Linear(D_MODEL, D_MODEL)
        self.o = nn.Linear(D_MODEL, D_MODEL)
        causal = torch.triu(torch.ones(CONTEXT, CONTEXT, dtype=torch.bool), diagonal=1)
        self.register_buffer("mask", torch.zeros(CONTEXT, CONTEXT).masked_fill(causal, -1e4))

    def forward(self, x2, b, t):
        dh = D_MODEL // N_HEADS

        def heads(y):
            return y.reshape(b, t, N_HEADS, dh).transpose(1, 2)

        q, k, v = heads(self.q(x2)), heads(self.k(x2)), heads(self.v(x2))
        scores = torch.matmul(q, k.transpose(2, 3)) * (1.0 / math.sqrt(dh)) + self.mask[:t, :t]
        y = torch.matmul(torch.softmax(scores, dim=-1), v)
        return self.o(y.transpose(1, 2).reshape(b * t, D_MODEL))


class GemmBlock(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln1 = nn.LayerNorm(D_MODEL)
        self.attn = GemmAttention()
        self.ln2 = nn.LayerNorm(D_MODEL)
        self.fc1 = nn.Linear(D_MODEL, D_MLP)
        self.fc2 = nn.Linear(D_MLP, D_MODEL)

    def forward(self, x2, b, t):
        x2 = x2 + self.attn(self.ln1(x2), b, t)
        return x2 + self.fc2(F.gelu(self.fc1(self.ln2(x2)), approximate="tanh"))


class TiedGemmLM(nn.Module):
    def __init__(self, vocab):
        super().__init__()
        self.tok = nn.Embedding(vocab, D_MODEL)
        self.pos = nn.Parameter(torch.zeros(CONTEXT, D_MODEL))
        self.blocks = nn.ModuleList([GemmBlock() for _ in range(2)])
        self.ln_f = nn.LayerNorm(D_MODEL)
        # Tied head: logits = h @ tok.weight^T + bias. With a bias, F.linear on a 2-D input exports
        # as Gemm(h, tok.weight, bias, transB=1), the same initializer the Gather reads.
        self.head_bias = nn.Parameter(torch.zeros(vocab))
        nn.init.normal_(self.pos, std=0.02)
        nn.init.normal_(self.tok.weight, std=0.02)

    def forward(self, input_ids):
        b, t = input_ids.shape
        x2 = (self.tok(input_ids) + self.pos[:t]).reshape(b * t, D_MODEL)
        for block in self.blocks:
            x2 = block(x2, b, t)
        logits = F.linear(self.ln_f(x2), self.tok.weight, self.head_bias)
        return logits.reshape(b, t, -1)


def make_lm_gemm_tied(books, metrics):
    mm.seed_everything(2024)
    train_parts, val_parts = [], []
    for text in books:  # byte-level: UTF-8 bytes of the same reflowed novels, same 90/10 split
        cut = int(len(text) * 0.9)
        train_parts.append(np.frombuffer(text[:cut].encode("utf-8"), dtype=np.uint8))
        val_parts.append(np.frombuffer(text[cut:].encode("utf-8"), dtype=np.uint8))
    train_ids = np.concatenate(train_parts).astype(np.int64)
    val_ids = np.concatenate(val_parts).astype(np.int64)
    eval_windows = mm.disjoint_windows(val_ids, N_EVAL, CONTEXT + 1, np.random.RandomState(17))
    val_windows = mm.disjoint_windows(val_ids, 256, CONTEXT + 1, np.random.RandomState(18))
    calib = mm.disjoint_windows(train_ids, N_CALIB, CONTEXT, np.random.RandomState(19))
    model = TiedGemmLM(256)
    seconds = train_lm(model, train_ids, val_windows, "lm-gemm-tied")
    model.eval()
    bpc = mm.bits_per_char(model, eval_windows)
    path = os.path.join(OUT, "lm-gemm-tied.onnx")
    export_lm(model, path, 14, torch.from_numpy(eval_windows[:2, :CONTEXT]))
    np.save(os.path.join(OUT, "lm-gemm-tied-eval.npy"), eval_windows)
    np.save(os.path.join(OUT, "lm-gemm-tied-calib.npy"), calib)
    print(f"[lm-gemm-tied] eval {bpc:.4f} bits/byte, {seconds:.0f} s, {os.path.getsize(path)} B")
    metrics["lm-gemm-tied"] = {
        "parameters": sum(p.numel() for p in model.parameters()), "opset": 14, "steps": LM_STEPS,
        "train_seconds": round(seconds, 1), "eval_bits_per_char": round(bpc, 6),
        "eval_perplexity": round(2 ** bpc, 6), "onnx_bytes": os.path.getsize(path),
    }


# ---------------------------------------------------------------- (b) lm-constants
class WhereMaskAttention(nn.Module):
    def __init__(self):
        super().__init__()
        self.q = nn.Linear(D_MODEL, D_MODEL)
        self.k = nn.Linear(D_MODEL, D_MODEL)
        self.v = nn.Linear(D_MODEL, D_MODEL)
        self.o = nn.Linear(D_MODEL, D_MODEL)
        # Boolean "future" triangle; masked_fill with -inf exports as Where(mask, -inf, scores).
        self.register_buffer("future", torch.triu(torch.ones(CONTEXT, CONTEXT, dtype=torch.bool), 1))

    def forward(self, x):
        b, t, _ = x.shape
        dh = D_MODEL // N_HEADS

        def heads(y):
            return y.reshape(b, t, N_HEADS, dh).transpose(1, 2)

        q, k, v = heads(self.q(x)), heads(self.k(x)), heads(self.v(x))
        scores = torch.matmul(q, k.transpose(2, 3)) / math.sqrt(dh)
        scores = scores.masked_fill(self.future[:t, :t], float("-inf"))
        y = torch.matmul(torch.softmax(scores, dim=-1), v)
        return self.o(y.transpose(1, 2).reshape(b, t, D_MODEL))


class WhereBlock(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln1 = nn.LayerNorm(D_MODEL)
        self.attn = WhereMaskAttention()
        self.ln2 = nn.LayerNorm(D_MODEL)
        self.fc1 = nn.Linear(D_MODEL, D_MLP)
        self.fc2 = nn.Linear(D_MLP, D_MODEL)

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.fc2(F.gelu(self.fc1(self.ln2(x))))


class WhereLM(nn.Module):
    def __init__(self, vocab):
        super().__init__()
        self.tok = nn.Embedding(vocab, D_MODEL)
        self.pos = nn.Parameter(torch.zeros(CONTEXT, D_MODEL))
        self.blocks = nn.ModuleList([WhereBlock() for _ in range(2)])
        self.ln_f = nn.LayerNorm(D_MODEL)
        self.head = nn.Linear(D_MODEL, vocab)
        nn.init.normal_(self.pos, std=0.02)
        nn.init.normal_(self.tok.weight, std=0.02)

    def forward(self, input_ids):
        t = input_ids.shape[1]
        x = self.tok(input_ids) + self.pos[:t]
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_f(x))


@torch.no_grad()
def add_outlier_channel(model):
    """Scale channel c of every in-block LayerNorm output by s and divide the columns of the
    Linears reading it by s: the same function, but the activations entering q/k/v and fc1 have
    one channel s times larger than the rest (the LLM outlier pattern SmoothQuant addresses)."""
    c, s = OUTLIER_CHANNEL, OUTLIER_SCALE
    for block in model.blocks:
        for ln, readers in ((block.ln1, (block.attn.q, block.attn.k, block.attn.v)), (block.ln2, (block.fc1,))):
            ln.weight[c] *= s
            ln.bias[c] *= s
            for lin in readers:
                lin.weight[:, c] /= s


def make_lm_constants(books, metrics):
    mm.seed_everything(2025)
    itos = mm.build_vocab(books)
    stoi = {ch: i for i, ch in enumerate(itos)}
    train_parts, val_parts = [], []
    for text in books:
        cut = int(len(text) * 0.9)
        train_parts.append(mm.encode(text[:cut], stoi))
        val_parts.append(mm.encode(text[cut:], stoi))
    train_ids = np.concatenate(train_parts)
    val_ids = np.concatenate(val_parts)
    # Exactly make_models.py's eval and calibration windows (checked against models/).
    eval_windows = mm.disjoint_windows(val_ids, mm.N_EVAL, CONTEXT + 1, np.random.RandomState(7))
    calib = mm.disjoint_windows(train_ids, mm.N_CALIB, CONTEXT, np.random.RandomState(9))
    for name, arr in (("lm-eval.npy", eval_windows), ("lm-calib.npy", calib)):
        if not np.array_equal(np.load(os.path.join(MODELS, name)), arr):
            raise SystemExit(f"models/{name} differs from this script's recomputation")
    val_windows = mm.disjoint_windows(val_ids, 256, CONTEXT + 1, np.random.RandomState(8))
    model = WhereLM(len(itos))
    seconds = train_lm(model, train_ids, val_windows, "lm-constants")
    model.eval()
    bpc_before = mm.bits_per_char(model, eval_windows)
    add_outlier_channel(model)
    bpc = mm.bits_per_char(model, eval_windows)
    path = os.path.join(OUT, "lm-constants.onnx")
    export_lm(model, path, 13, torch.from_numpy(eval_windows[:2, :CONTEXT]))
    moved = initializers_to_constants(path)
    print(f"[lm-constants] eval {bpc:.4f} bits/char (before outlier rescale {bpc_before:.4f}), "
          f"{moved} initializers moved into Constant nodes, {seconds:.0f} s, {os.path.getsize(path)} B")
    metrics["lm-constants"] = {
        "parameters": sum(p.numel() for p in model.parameters()), "opset": 13, "steps": LM_STEPS,
        "train_seconds": round(seconds, 1), "eval_bits_per_char": round(bpc, 6),
        "eval_perplexity": round(2 ** bpc, 6), "outlier_channel": OUTLIER_CHANNEL,
        "outlier_scale": OUTLIER_SCALE, "constants": moved, "onnx_bytes": os.path.getsize(path),
    }


# ---------------------------------------------------------------- initializers -> Constant nodes
# ONNX has no Python package on this machine (Debian's torch exports without it), so this edits
# the protobuf wire format directly. Field numbers from onnx.proto: ModelProto.graph = 7;
# GraphProto.node = 1, .initializer = 5; TensorProto.name = 8; NodeProto.output = 2, .name = 3,
# .op_type = 4, .attribute = 5; AttributeProto.name = 1, .t = 5, .type = 20 (TENSOR = 4).
def _varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _read_varint(buf, p):
    shift = n = 0
    while True:
        b = buf[p]
        p += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, p


def _fields(buf):
    """(field number, wire type, raw bytes of the whole field, payload) for each field."""
    p = 0
    while p < len(buf):
        start = p
        key, p = _read_varint(buf, p)
        field, wire = key >> 3, key & 7
        if wire == 0:
            _, p = _read_varint(buf, p)
            payload = None
        elif wire == 1:
            p += 8
            payload = None
        elif wire == 2:
            n, p = _read_varint(buf, p)
            payload = buf[p:p + n]
            p += n
        elif wire == 5:
            p += 4
            payload = None
        else:
            raise ValueError(f"unsupported wire type {wire}")
        yield field, wire, buf[start:p], payload


def _ld(field, payload):
    return _varint(field << 3 | 2) + _varint(len(payload)) + payload


def initializers_to_constants(path):
    with open(path, "rb") as f:
        model = f.read()
    new_model, moved = bytearray(), 0
    for field, _, raw, payload in _fields(model):
        if field != 7:
            new_model += raw
            continue
        constants, rest = bytearray(), bytearray()
        for gfield, _, graw, gpayload in _fields(payload):
            if gfield != 5:
                rest += graw
                continue
            name = next(p for f, _, _, p in _fields(gpayload) if f == 8)
            attr = _ld(1, b"value") + _ld(5, gpayload) + _varint(20 << 3) + _varint(4)
            node = _ld(2, name) + _ld(3, b"const_" + name) + _ld(4, b"Constant") + _ld(5, attr)
            constants += _ld(1, node)
            moved += 1
        # Constant nodes first: the node list stays topologically sorted.
        new_model += _ld(7, bytes(constants + rest))
    with open(path, "wb") as f:
        f.write(new_model)
    return moved


# ---------------------------------------------------------------- CNN variants
def digits_split():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.images.astype(np.float32) / 16.0).reshape(-1, 1, 8, 8)
    y = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, train_size=1300, test_size=497, random_state=0, stratify=y)
    for name, arr in (("cnn-test-x.npy", x_test), ("cnn-test-y.npy", y_test)):
        if not np.array_equal(np.load(os.path.join(MODELS, name)), arr):
            raise SystemExit(f"models/{name} differs from this script's recomputation")
    return x_train, y_train, x_test, y_test


def conv_bn(cin, cout, k, stride=1, groups=1):
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, groups=groups),
                         nn.BatchNorm2d(cout))


class SqueezeExcite(nn.Module):
    def __init__(self, c, r):
        super().__init__()
        self.fc1 = nn.Conv2d(c, c // r, 1)
        self.fc2 = nn.Conv2d(c // r, c, 1)

    def forward(self, x):
        s = F.adaptive_avg_pool2d(x, 1)  # GlobalAveragePool
        return x * torch.sigmoid(self.fc2(F.relu(self.fc1(s))))


class ResidualCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = conv_bn(1, 16, 3)
        self.dw = conv_bn(16, 16, 3, groups=16)      # depthwise
        self.pw = conv_bn(16, 16, 1)                 # pointwise, then + skip
        self.se = SqueezeExcite(16, 4)
        self.down = conv_bn(16, 32, 3, stride=2)     # 16x16 -> 8x8
        self.res2 = conv_bn(32, 32, 3)               # 8x8, + skip
        self.fc = nn.Linear(32 * 4 * 4, 10)

    def forward(self, x):
        x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)  # Resize
        x = F.relu(self.stem(x))
        x = F.relu(x + self.pw(F.relu(self.dw(x))))
        x = self.se(x)
        x = F.relu(self.down(x))
        x = F.relu(x + self.res2(x))
        return self.fc(torch.flatten(F.max_pool2d(x, 2), 1))


class Opset11CNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = conv_bn(1, 12, 3)
        self.c2 = conv_bn(12, 24, 3)
        self.c3 = conv_bn(24, 24, 3)
        self.fc1 = nn.Linear(24 * 4 * 4, 48)
        self.fc2 = nn.Linear(48, 10)

    def forward(self, x):
        x = F.relu(self.c1(x))
        x = F.max_pool2d(F.relu(self.c2(x)), 2)
        x = F.relu(self.c3(x))
        return self.fc2(F.relu(self.fc1(torch.flatten(x, 1))))


def train_cnn(model, name, opset, split, metrics, seed, epochs=25):
    x_train, y_train, x_test, y_test = split
    mm.seed_everything(seed)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    xt, yt = torch.from_numpy(x_train), torch.from_numpy(y_train)
    rng = np.random.RandomState(seed)
    t0 = time.time()
    for _ in range(epochs):
        model.train()
        order = torch.from_numpy(rng.permutation(len(xt)))
        for i in range(0, len(order), 32):
            idx = order[i:i + 32]
            loss = F.cross_entropy(model(xt[idx]), yt[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    seconds = time.time() - t0
    model.eval()
    with torch.no_grad():
        acc = float((model(torch.from_numpy(x_test)).argmax(1).numpy() == y_test).mean())
    path = os.path.join(OUT, f"{name}.onnx")
    # PRESERVE keeps BatchNormalization in the graph (folding it is quantkit's pass to test).
    torch.onnx.export(model, (torch.from_numpy(x_test[:2]),), path, opset_version=opset,
                      input_names=["input"], output_names=["logits"],
                      training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=True,
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    print(f"[{name}] test accuracy {acc * 100:.2f} %, {seconds:.1f} s, {os.path.getsize(path)} B")
    metrics[name] = {
        "parameters": sum(p.numel() for p in model.parameters()), "opset": opset, "epochs": epochs,
        "train_seconds": round(seconds, 1), "test_accuracy": round(acc, 6),
        "onnx_bytes": os.path.getsize(path),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--austen-rdb", help="path of janeaustenr's data/Rdata.rdb")
    parser.add_argument("--only", nargs="*", choices=["lm-gemm-tied", "lm-constants", "cnn-residual", "cnn-opset11"])
    args = parser.parse_args()
    only = set(args.only or ["lm-gemm-tied", "lm-constants", "cnn-residual", "cnn-opset11"])
    torch.set_num_threads(2)
    torch.use_deterministic_algorithms(True)
    os.makedirs(OUT, exist_ok=True)
    metrics_path = os.path.join(OUT, "metrics.json")
    metrics = json.load(open(metrics_path)) if os.path.exists(metrics_path) else {}
    metrics["torch"] = torch.__version__
    if only & {"cnn-residual", "cnn-opset11"}:
        split = digits_split()
        if "cnn-residual" in only:
            train_cnn(ResidualCNN(), "cnn-residual", 13, split, metrics, seed=31)
        if "cnn-opset11" in only:
            train_cnn(Opset11CNN(), "cnn-opset11", 11, split, metrics, seed=32)
    if only & {"lm-gemm-tied", "lm-constants"}:
        books, _ = mm.load_corpus(mm.read_austen_rdb(args.austen_rdb))
        if "lm-gemm-tied" in only:
            make_lm_gemm_tied(books, metrics)
        if "lm-constants" in only:
            make_lm_constants(books, metrics)
    with open(metrics_path, "w") as f:
        json.dump(metrics, f, indent=2, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
