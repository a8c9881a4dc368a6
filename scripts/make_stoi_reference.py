#!/usr/bin/env python3
"""Regenerates crates/ember-audio/tests/data/stoi: degraded versions of the bundled test
speech (assets/speech/test: noise at 0 and 5 dB, and a low-passed copy) as 16 kHz 16-bit
WAV, with pystoi's STOI and ESTOI of each against its clean clip in reference.json. Our
STOI/ESTOI must agree within 0.01 (crates/ember-audio/tests/stoi_pystoi.rs).

Needs numpy and pystoi (pip install pystoi)."""
import importlib.metadata, json, os, wave

import numpy as np
import pystoi

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
speech = os.path.join(root, "assets", "speech", "test")
out = os.path.join(root, "crates", "ember-audio", "tests", "data", "stoi")
os.makedirs(out, exist_ok=True)


def read(path):
    with wave.open(path) as w:
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64) / 32768.0


def write(path, x):
    q = np.clip(np.round(x * 32768.0), -32768, 32767).astype("<i2")
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(q.tobytes())


def at_snr(clean, noise, snr):
    noise = noise[: len(clean)]
    gain = np.sqrt(np.sum(clean**2) / (np.sum(noise**2) * 10 ** (snr / 10)))
    return clean + gain * noise


first = "it_IT_m_Carlo-conf-now-recording.wav"
second = "it_IT_m_Carlo-dir-firstlast.wav"
c1, c2 = read(f"{speech}/clean/{first}"), read(f"{speech}/clean/{second}")
cases = {
    "traffic_0db.wav": (first, at_snr(c1, read(f"{speech}/noise/lincity-TraficHigh1.wav"), 0.0)),
    "restaurant_5db.wav": (second, at_snr(c2, read(f"{speech}/noise/stk-lenautile_restaurant.wav"), 5.0)),
    "lowpassed.wav": (first, np.convolve(c1, np.ones(9) / 9, mode="same")),
}
reference = []
for name, (clean_name, degraded) in cases.items():
    write(os.path.join(out, name), degraded)
    # Score exactly what the files hold.
    clean, degraded = read(f"{speech}/clean/{clean_name}"), read(os.path.join(out, name))
    reference.append({
        "clean": f"assets/speech/test/clean/{clean_name}",
        "degraded": f"crates/ember-audio/tests/data/stoi/{name}",
        "stoi": pystoi.stoi(clean, degraded, 16000),
        "estoi": pystoi.stoi(clean, degraded, 16000, extended=True),
    })
with open(os.path.join(out, "reference.json"), "w") as f:
    json.dump({"pystoi": importlib.metadata.version("pystoi"), "cases": reference}, f, indent=1)
print(json.dumps(reference, indent=1))
