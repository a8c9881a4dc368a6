#!/usr/bin/env bash
# Builds the offline speech-enhancement corpus of README's TaylorSENet experiment from Debian
# packages (specs/taylorse.md section 13): recorded speech (asterisk prompts in five voices,
# the pocketsphinx LibriVox reader) and noise (lincity-ng, colobot, SuperTuxKart effects,
# procedural white/pink/brown and babble), 16 kHz mono WAV with disjoint speakers and noise
# types for train and test:
#
#   scripts/setup_speech.sh [OUT]        # default data/speech: OUT/{train,test}/{clean,noise}
#
# Needs root for apt (or the packages installed). SKIP_STK=1 leaves out SuperTuxKart, whose
# package is a 628 MB download (only its sound effects are extracted). Re-running skips what
# exists. Users with VoiceBank+DEMAND or DNS data use the same layout instead.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-data/speech}"
packages=(ffmpeg asterisk-core-sounds-en-g722 asterisk-core-sounds-es-g722
          asterisk-core-sounds-fr-g722 asterisk-core-sounds-it-g722 asterisk-core-sounds-ru-g722
          pocketsphinx-testdata lincity-ng-data colobot-common-sounds)
sudo_=""; [ "$(id -u)" -ne 0 ] && sudo_="sudo -n"
missing=()
for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup_speech: installing ${missing[*]}" >&2
  $sudo_ apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || { $sudo_ apt-get update -qq && $sudo_ apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }
fi

stk_args=()
if [ "${SKIP_STK:-0}" != 1 ]; then
  stk="$out/.cache/supertuxkart-sfx"
  if [ ! -d "$stk/usr/share/games/supertuxkart/data/sfx" ]; then
    echo "setup_speech: downloading supertuxkart-data (628 MB) for its sound effects" >&2
    mkdir -p "$stk"
    (cd "$stk" && apt-get download supertuxkart-data >/dev/null)
    dpkg-deb --fsys-tarfile "$stk"/supertuxkart-data_*.deb \
      | tar -x -C "$stk" --wildcards './usr/share/games/supertuxkart/data/sfx/*'
    rm -f "$stk"/supertuxkart-data_*.deb
  fi
  stk_args=(--stk "$stk/usr/share/games/supertuxkart/data/sfx")
fi
python3 scripts/lib/speech_corpus.py "$out" "${stk_args[@]}"
echo "setup_speech: corpus in $out" >&2
