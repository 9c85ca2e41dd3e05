#!/usr/bin/python3
"""Training splits for quantization-aware training, and a second digits model that no QAT setting
was tuned on. Reuses make_models.py's data sources and splits, so the training data here is exactly
what cnn.onnx and lm.onnx were trained on (and disjoint from their test/eval data).

    /usr/bin/python3 scripts/models/make_train_data.py      # ~1 min on 2 cores
    /usr/bin/python3 scripts/models/make_train_data.py --lm-windows 8192 --lm-out .cache/lm-train-8192.npy

The second form writes only LM training windows, as many as asked (up to the ~55k disjoint 65-character
windows of the training split; seconds), for fine-tuning on more text than the committed 512. Too big
to commit: it goes to the git-ignored .cache/.

Outputs (under models/train/):
  digits-train-x.npy  float32 [1300, 1, 8, 8]   the CNN's training split (pixels / 16)
  digits-train-y.npy  int64   [1300]
  lm-train.npy        int64   [512, 65]         disjoint windows of the LM's training text
  gcnn.onnx           a grouped-conv digits CNN (Conv, grouped Conv, AveragePool, 1x1 Conv + GELU,
                      GlobalAveragePool, Gemm; BatchNormalization kept), trained on digits-train,
                      tested on models/cnn-test-{x,y}.npy
"""

import argparse
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(__file__))
import make_models as mm  # noqa: E402

OUT = os.path.join(mm.OUT, "train")


class GroupedCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 16, 3, padding=1)
        self.b1 = nn.BatchNorm2d(16)
        self.c2 = nn.Conv2d(16, 32, 3, padding=1, groups=4)
        self.b2 = nn.BatchNorm2d(32)
        self.c3 = nn.Conv2d(32, 48, 1)
        self.fc = nn.Linear(48, 10)

    def forward(self, x):
        x = F.relu(self.b1(self.c1(x)))
        x = F.avg_pool2d(F.relu(self.b2(self.c2(x))), 2)
        x = F.gelu(self.c3(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def digits_split():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.images.astype(np.float32) / 16.0).reshape(-1, 1, 8, 8)
    y = digits.target.astype(np.int64)
    return train_test_split(x, y, train_size=1300, test_size=497, random_state=0, stratify=y)


def make_gcnn(x_train, y_train, x_test, y_test):
    mm.seed_everything(4321)
    model = GroupedCNN()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    xt, yt = torch.from_numpy(x_train), torch.from_numpy(y_train)
    rng = np.random.RandomState(12)
    for _ in range(40):
        model.train()
        order = torch.from_numpy(rng.permutation(len(xt)))
        for i in range(0, len(order), 32):
            idx = order[i:i + 32]
            loss = F.cross_entropy(model(xt[idx]), yt[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        acc = (model(torch.from_numpy(x_test)).argmax(1).numpy() == y_test).mean()
    print(f"[gcnn] test accuracy {acc * 100:.2f} %")
    torch.onnx.export(model, (torch.from_numpy(x_test[:2]),), os.path.join(OUT, "gcnn.onnx"),
                      opset_version=mm.OPSET, input_names=["input"], output_names=["logits"],
                      training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=True,
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})


def make_lm_windows(rdb, count=512, path=None):
    books, _ = mm.load_corpus(mm.read_austen_rdb(rdb))
    itos = mm.build_vocab(books)
    stoi = {ch: i for i, ch in enumerate(itos)}
    train_ids = np.concatenate([mm.encode(text[:int(len(text) * 0.9)], stoi) for text in books])
    windows = mm.disjoint_windows(train_ids, count, mm.CONTEXT + 1, np.random.RandomState(10))
    path = path or os.path.join(OUT, "lm-train.npy")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    np.save(path, windows)
    print(f"[lm] {windows.shape[0]} windows of {windows.shape[1]} ids -> {path}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("austen_rdb", nargs="?", help="path of janeaustenr's data/Rdata.rdb")
    parser.add_argument("--lm-windows", type=int, help="write only this many LM training windows")
    parser.add_argument("--lm-out", help="where --lm-windows writes them (default .cache/lm-train-N.npy)")
    args = parser.parse_args()
    if args.lm_windows:
        out = args.lm_out or os.path.join(mm.OUT, "..", ".cache", f"lm-train-{args.lm_windows}.npy")
        make_lm_windows(args.austen_rdb, args.lm_windows, out)
        return
    torch.set_num_threads(2)
    torch.use_deterministic_algorithms(True)
    os.makedirs(OUT, exist_ok=True)
    x_train, x_test, y_train, y_test = digits_split()
    np.save(os.path.join(OUT, "digits-train-x.npy"), np.ascontiguousarray(x_train))
    np.save(os.path.join(OUT, "digits-train-y.npy"), y_train)
    make_gcnn(x_train, y_train, x_test, y_test)
    make_lm_windows(args.austen_rdb)


if __name__ == "__main__":
    main()
