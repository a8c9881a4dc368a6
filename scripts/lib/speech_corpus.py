#!/usr/bin/env python3
"""Builds TaylorSENet's offline speech corpus (specs/taylorse.md section 13) from the files of
Debian packages: 16 kHz mono 16-bit WAV under OUT/{train,test}/{clean,noise}/, with disjoint
speakers and noise types between train and test. Python's standard library plus ffmpeg (for
the G.722 prompts and the resampling); deterministic.

  speech_corpus.py OUT [--stk DIR]     # DIR: the extracted SuperTuxKart sfx folder

Train speech: the asterisk prompts of en_US_f_Allison, es_MX_f_Allison, fr_CA_f_June and
ru_RU_f_IvrvoiceRU. Test speech: it_IT_m_Carlo (an unseen male speaker) and the pocketsphinx
LibriVox reader. Items under 1 s or over 30 s, tones and near-silent files are dropped.
Train noise: lincity-ng city sounds (but two categories), colobot effects, SuperTuxKart
engines/machine/radio static/rain/thunder/jet/fireworks, procedural white, pink and brown
noise, and babble summed from train speakers. Test noise: SuperTuxKart restaurant babble,
river, waterfall and birds, and lincity's stadium crowd and heavy traffic."""
import argparse, array, glob, math, os, random, subprocess, sys, wave

RATE = 16000
ASTERISK = "/usr/share/asterisk/sounds"
TRAIN_SPEAKERS = ["en_US_f_Allison", "es_MX_f_Allison", "fr_CA_f_June", "ru_RU_f_IvrvoiceRU"]
TEST_SPEAKERS = ["it_IT_m_Carlo"]
LIBRIVOX = "/usr/share/pocketsphinx/test/data/librivox"
LINCITY = "/usr/share/games/lincity-ng/sounds"
COLOBOT = "/usr/share/games/colobot/sounds"
LINCITY_TEST = ("SportsCroud", "TraficHigh")
STK_TRAIN = ["engine_large", "machine_sound", "static-radio", "rain", "airplane_jetEngine",
             "thunder", "fireworks_show"]
STK_TEST = ["lenautile_restaurant", "river_loop", "waterfall_loop_2", "exotic-birds"]
TONES = ("beep", "tone", "ascending", "descending", "silence")


def convert(src, dst, fmt=None):
    """src -> 16 kHz mono s16 WAV at dst with ffmpeg; returns the samples."""
    cmd = ["ffmpeg", "-nostdin", "-loglevel", "error", "-y"]
    if fmt:
        cmd += ["-f", fmt]
    cmd += ["-i", src, "-ar", str(RATE), "-ac", "1", "-sample_fmt", "s16", dst]
    subprocess.run(cmd, check=True)
    return read(dst)


def read(path):
    with wave.open(path) as w:
        data = array.array("h", w.readframes(w.getnframes()))
    return [v / 32768.0 for v in data]


def write(path, samples):
    peak = max(1e-9, max(abs(v) for v in samples))
    scale = 0.9 / peak if peak > 0.9 else 1.0
    data = array.array("h", (max(-32768, min(32767, round(v * scale * 32768))) for v in samples))
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(data.tobytes())


def rms(x):
    return math.sqrt(sum(v * v for v in x) / max(1, len(x)))


def keep_speech(samples):
    seconds = len(samples) / RATE
    return 1.0 <= seconds <= 30.0 and rms(samples) > 1e-3


def speech(out, speakers, extra=()):
    os.makedirs(out, exist_ok=True)
    kept = []
    for spk in speakers:
        for src in sorted(glob.glob(f"{ASTERISK}/{spk}/**/*.g722", recursive=True)):
            rel = os.path.relpath(src, f"{ASTERISK}/{spk}")
            if os.path.getsize(src) == 0 or any(t in rel for t in TONES):
                continue
            dst = os.path.join(out, f"{spk}-{rel[:-5].replace('/', '_')}.wav")
            x = read(dst) if os.path.exists(dst) else convert(src, dst, "g722")
            if keep_speech(x):
                kept.append(dst)
            else:
                os.remove(dst)
    for src in extra:
        dst = os.path.join(out, "librivox-" + os.path.basename(src))
        if not os.path.exists(dst):
            convert(src, dst)
        kept.append(dst)
    return kept


def noise(out, sources):
    os.makedirs(out, exist_ok=True)
    for name, src in sources:
        dst = os.path.join(out, name + ".wav")
        if not os.path.exists(dst):
            x = convert(src, dst)
            if rms(x) < 1e-4:
                os.remove(dst)


def procedural(out, seconds=60, seed=0):
    rng = random.Random(seed)
    n = seconds * RATE
    white = [rng.gauss(0, 0.1) for _ in range(n)]
    # Pink: Paul Kellet's economy filter of white noise; brown: leaky integration.
    b0 = b1 = b2 = 0.0
    pink = []
    for w in white:
        b0 = 0.99765 * b0 + w * 0.0990460
        b1 = 0.96300 * b1 + w * 0.2965164
        b2 = 0.57000 * b2 + w * 1.0526913
        pink.append((b0 + b1 + b2 + w * 0.1848) * 0.3)
    brown, acc = [], 0.0
    for w in white:
        acc = 0.998 * acc + w * 0.1
        brown.append(acc)
    for name, x in (("white", white), ("pink", pink), ("brown", brown)):
        write(os.path.join(out, f"procedural-{name}.wav"), x)


def babble(out, utterances, count=8, seconds=20, seed=1):
    """Sums of 3-8 random train utterances, each at a random offset and level."""
    rng = random.Random(seed)
    n = seconds * RATE
    for i in range(count):
        mix = [0.0] * n
        for path in rng.sample(utterances, rng.randint(3, 8)):
            x = read(path)
            gain = rng.uniform(0.5, 1.0) / max(rms(x), 1e-6)
            start = rng.randrange(0, n)
            for k in range(n):
                mix[(start + k) % n] += gain * x[k % len(x)]
        write(os.path.join(out, f"babble-{i}.wav"), mix)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--stk", help="extracted SuperTuxKart data/sfx folder")
    args = ap.parse_args()
    train_clean = speech(f"{args.out}/train/clean", TRAIN_SPEAKERS)
    test_clean = speech(f"{args.out}/test/clean", TEST_SPEAKERS, sorted(glob.glob(f"{LIBRIVOX}/*.wav")))
    lincity = sorted(glob.glob(f"{LINCITY}/*.wav"))
    is_test = lambda p: os.path.basename(p).startswith(LINCITY_TEST)
    train_noise = [("lincity-" + os.path.basename(p)[:-4], p) for p in lincity if not is_test(p)]
    train_noise += [("colobot-" + os.path.basename(p)[:-4], p) for p in sorted(glob.glob(f"{COLOBOT}/sound*.wav"))]
    test_noise = [("lincity-" + os.path.basename(p)[:-4], p) for p in lincity if is_test(p)]
    if args.stk:
        train_noise += [(f"stk-{n}", f"{args.stk}/{n}.ogg") for n in STK_TRAIN if os.path.exists(f"{args.stk}/{n}.ogg")]
        test_noise += [(f"stk-{n}", f"{args.stk}/{n}.ogg") for n in STK_TEST if os.path.exists(f"{args.stk}/{n}.ogg")]
    noise(f"{args.out}/train/noise", train_noise)
    noise(f"{args.out}/test/noise", test_noise)
    procedural(f"{args.out}/train/noise")
    babble(f"{args.out}/train/noise", train_clean)
    for split in ("train", "test"):
        for kind in ("clean", "noise"):
            files = glob.glob(f"{args.out}/{split}/{kind}/*.wav")
            seconds = sum(os.path.getsize(f) - 44 for f in files) / 2 / RATE
            print(f"{split}/{kind}: {len(files)} files, {seconds / 60:.1f} min", file=sys.stderr)


if __name__ == "__main__":
    main()
