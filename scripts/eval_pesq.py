#!/usr/bin/env python3
"""PESQ-WB and the composite measures of the mixtures `taylorse-enhance eval --write DIR`
wrote (DIR/mixtures.json and DIR/{clean,noisy,enhanced}/FILE), per SNR, for noisy and
enhanced speech; one JSON object per DIR on stdout.

  scripts/eval_pesq.py DIR [DIR ...]

PESQ is ITU-T P.862.2 wide-band through the `pesq` package (no Rust implementation exists).
CSIG/CBAK/COVL are Hu & Loizou's regressions with the WB-PESQ plugged in (as VoiceBank papers
do) and LLR, WSS and segmental SNR from `pysepm-evo` (which needs the scipy shims below).
Needs: pip install pesq pysepm-evo scipy numpy."""
import json, os, sys, types

import numpy as np
import scipy.io.wavfile
import scipy.signal
import scipy.signal.windows
from pesq import pesq

# pysepm-evo calls window functions removed from scipy.signal and imports srmrpy, which it
# only needs for a reverberation measure.
for name in ("kaiser", "hann", "hamming", "gaussian"):
    if not hasattr(scipy.signal, name):
        setattr(scipy.signal, name, getattr(scipy.signal.windows, name))
sys.modules.setdefault("srmrpy", types.ModuleType("srmrpy"))
import pysepm_evo  # noqa: E402

RATE = 16000


def read(path):
    rate, x = scipy.io.wavfile.read(path)
    assert rate == RATE, f"{path}: {rate} Hz"
    return x.astype(np.float64) / (32768.0 if x.dtype == np.int16 else 1.0)


def scores(clean, x):
    p = pesq(RATE, clean, x, "wb")
    llr = pysepm_evo.llr(clean, x, RATE, used_for_composite=True)
    wss = pysepm_evo.wss(clean, x, RATE)
    seg = pysepm_evo.SNRseg(clean, x, RATE)
    clip = lambda v: float(min(5.0, max(1.0, v)))
    return {
        "pesq_wb": p,
        "csig": clip(3.093 - 1.029 * llr + 0.603 * p - 0.009 * wss),
        "cbak": clip(1.634 + 0.478 * p - 0.007 * wss + 0.063 * seg),
        "covl": clip(1.594 + 0.805 * p - 0.512 * llr - 0.007 * wss),
    }


def folder(d):
    with open(os.path.join(d, "mixtures.json")) as f:
        mixtures = json.load(f)
    sums, counts, failed = {}, {}, 0
    for m in mixtures:
        clean = read(os.path.join(d, "clean", m["file"]))
        snr = format(m["snr_db"], "g")  # the keys of `taylorse-enhance eval`
        for kind in ("noisy", "enhanced"):
            try:
                s = scores(clean, read(os.path.join(d, kind, m["file"])))
            except Exception:  # pesq refuses clips with no detected speech
                failed += 1
                continue
            acc = sums.setdefault(snr, {}).setdefault(kind, {})
            for k, v in s.items():
                acc[k] = acc.get(k, 0.0) + v
            counts[(snr, kind)] = counts.get((snr, kind), 0) + 1
    means = {snr: {kind: {k: v / counts[(snr, kind)] for k, v in acc.items()} for kind, acc in kinds.items()}
             for snr, kinds in sums.items()}
    return {"dir": d, "by_snr_db": means, "mixtures": len(mixtures), "failed": failed}


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    for d in sys.argv[1:]:
        print(json.dumps(folder(d)))
