#!/usr/bin/env python3
"""Regenerates assets/speech: a tiny corpus in the layout of scripts/setup_speech.sh
(train/{clean,noise}, test/{clean,noise}, 16 kHz 16-bit mono WAV) cut from a full corpus
(default data/speech), for tests and README's demo. Deterministic: fixed files, each cut to
its first MAX seconds."""
import os, shutil, sys, wave

src = sys.argv[1] if len(sys.argv) > 1 else "data/speech"
dst = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "assets", "speech")
MAX = 3.0
PICK = {
    "train/clean": ["en_US_f_Allison-activated.wav", "fr_CA_f_June-lowercase.wav",
                    "es_MX_f_Allison-demo-moreinfo.wav", "ru_RU_f_IvrvoiceRU-hello-world.wav"],
    "train/noise": ["lincity-Harbor1.wav", "procedural-pink.wav", "babble-0.wav"],
    "test/clean": ["it_IT_m_Carlo-conf-now-recording.wav", "it_IT_m_Carlo-dir-firstlast.wav"],
    "test/noise": ["lincity-TraficHigh1.wav", "stk-lenautile_restaurant.wav"],
}

for folder, names in PICK.items():
    out = os.path.join(dst, folder)
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    for name in names:
        with wave.open(os.path.join(src, folder, name)) as r:
            frames = r.readframes(min(r.getnframes(), int(MAX * r.getframerate())))
            params = r.getparams()
        with wave.open(os.path.join(out, name), "wb") as w:
            w.setparams(params)
            w.writeframes(frames)
