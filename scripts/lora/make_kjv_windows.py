"""LM windows of a text the shipped char LM never saw: the Book of Genesis, King James Version.

Source: Debian's `bible-kjv-text` package (the 1611 translation, out of copyright; the package's
program and data are GPL-2+ / unrestricted, see /usr/share/doc/bible-kjv-text/copyright), read
through its `bible` program (package `bible-kjv`):

    apt-get install -y bible-kjv
    /usr/bin/python3 scripts/lora/make_kjv_windows.py

Preparation, as for the LM's own corpus: one line per chapter (its verses joined by a space,
verse numbers dropped), characters outside models/lm-vocab.json map to id 0. Split by chapter:
chapters 1-45 train, 46-50 held out. Windows of 65 ids (the model reads 64 and is scored on the
next 64) at seeded random positions. Deterministic: the same package gives the same bytes.
"""

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "models" / "kjv"
WINDOW = 65
TRAIN_WINDOWS = 384
EVAL_WINDOWS = 96
SEED = 15


def chapters() -> list[str]:
    try:
        text = subprocess.run(
            ["bible", "-l100000", "Gen1:1-50:26"], check=True, capture_output=True, text=True
        ).stdout
    except FileNotFoundError:
        sys.exit("the `bible` program is missing: apt-get install -y bible-kjv")
    out: list[list[str]] = []
    for line in text.splitlines():
        if re.fullmatch(r"Genesis \d+", line.strip()):
            out.append([])
        m = re.fullmatch(r"\s+\d+ (.*)", line)
        if m and out:
            out[-1].append(m.group(1).strip())
    if len(out) != 50:
        sys.exit(f"expected 50 chapters of Genesis, read {len(out)}")
    return [" ".join(verses) for verses in out]


def ids(text: str, vocab: dict[str, int]) -> np.ndarray:
    return np.array([vocab.get(c, 0) for c in text], dtype=np.int64)


def windows(stream: np.ndarray, count: int, rng: np.random.RandomState) -> np.ndarray:
    starts = rng.randint(0, len(stream) - WINDOW + 1, size=count)
    return np.stack([stream[s : s + WINDOW] for s in starts])


def main() -> None:
    vocab = {c: int(i) for i, c in json.loads((ROOT / "models" / "lm-vocab.json").read_text()).items()}
    ch = chapters()
    train = ids("\n".join(ch[:45]) + "\n", vocab)
    held = ids("\n".join(ch[45:]) + "\n", vocab)
    rng = np.random.RandomState(SEED)
    OUT.mkdir(parents=True, exist_ok=True)
    np.save(OUT / "genesis-train.npy", windows(train, TRAIN_WINDOWS, rng))
    np.save(OUT / "genesis-eval.npy", windows(held, EVAL_WINDOWS, rng))
    rare = int((train == 0).sum() + (held == 0).sum())
    print(f"train text {len(train)} chars, held-out {len(held)} chars, {rare} mapped to id 0")


if __name__ == "__main__":
    main()
