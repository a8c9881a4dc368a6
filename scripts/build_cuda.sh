#!/usr/bin/env bash
# Builds Ember with the `cuda` feature on a machine with no GPU and no driver, from PyPI's
# CUDA 13.0 wheels (specs/candle.md section 3.2): nvcc and the headers/libraries candle links
# against are unpacked under .cuda/, a link stub stands in for the driver's libcuda.so, and
# the kernels are compiled for one compute capability (default 90, Hopper).
#
#   scripts/build_cuda.sh [cargo build args...]     e.g. scripts/build_cuda.sh --example device_check -p ember-ops
#
# Data-parallel training over NCCL: add `--features nccl` (the NCCL wheel is fetched too).
#
# Output: target/cuda/release/. The binaries need libcuda.so.1 (the driver), libcublas.so.13,
# libcurand.so.10, libcudart.so.13 and libcudnn.so.9 (and libnccl.so.2 with nccl) at run time; on the GPU machine point LD_LIBRARY_PATH at
# them (the lib/ folder printed at the end has all but libcuda).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD/.cuda
CU=$ROOT/nvidia/cu13
COMPUTE_CAP=${CUDA_COMPUTE_CAP:-90}

wheels=(
  "nvidia-cuda-nvcc==13.0.*" "nvidia-cuda-runtime==13.0.*" "nvidia-cuda-crt==13.0.*"
  "nvidia-nvvm==13.0.*" "nvidia-cuda-nvrtc==13.0.*" "nvidia-curand==10.4.0.*"
  "nvidia-cuda-cccl==13.0.*" "nvidia-cublas==13.0.*" "nvidia-cudnn-cu13==9.*"
)
if [ ! -x "$CU/bin/nvcc" ]; then
  echo "build_cuda: downloading the CUDA 13.0 wheels (~1.2 GB unpacked) into $ROOT" >&2
  mkdir -p "$ROOT/wheels"
  python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$ROOT/wheels" "${wheels[@]}"
  for w in "$ROOT"/wheels/*.whl; do
    python3 -m zipfile -e "$w" "$ROOT"
  done
  chmod +x "$CU"/bin/* "$CU"/nvvm/bin/* 2>/dev/null || true
fi
[ -x "$CU/bin/nvcc" ] || { echo "build_cuda: nvcc missing under $CU/bin after unpacking" >&2; exit 1; }
# NCCL (data-parallel gradients, `--features nccl`): 300 MB more, so fetched apart, once.
if [ ! -d "$ROOT/nvidia/nccl/lib" ]; then
  echo "build_cuda: downloading the NCCL wheel into $ROOT" >&2
  mkdir -p "$ROOT/wheels"
  python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$ROOT/wheels" "nvidia-nccl-cu13==2.*"
  python3 -m zipfile -e "$(ls "$ROOT"/wheels/nvidia_nccl_cu13-*.whl | head -n 1)" "$ROOT"
fi

# cuDNN (Ember's convolutions) unpacks beside the toolkit: one lib/ folder serves both.
# Relative links, so that a copied .cuda/ keeps them.
for f in "$ROOT"/nvidia/cudnn/lib/libcudnn*.so.* "$ROOT"/nvidia/nccl/lib/libnccl.so.*; do
  [ -e "$f" ] && ln -sf "../../$(basename "$(dirname "$(dirname "$f")")")/lib/$(basename "$f")" "$CU/lib/"
done
for f in "$ROOT"/nvidia/cudnn/include/cudnn*.h; do
  [ -e "$f" ] && ln -sf "../../cudnn/include/$(basename "$f")" "$CU/include/"
done
# Unversioned names for the linker.
for lib in cudart nvrtc curand cublas cublasLt cudnn nccl; do
  target=$(ls "$CU"/lib/lib$lib.so.* 2>/dev/null | sort | head -n 1 || true)
  [ -n "$target" ] && ln -sf "$(basename "$target")" "$CU/lib/lib$lib.so"
done

# The driver library is not in any wheel: link against a stub with the same soname, so the
# binary asks for the real libcuda.so.1 on the GPU machine. The symbol list comes from the
# cudarc bindings candle uses.
if [ ! -f "$CU/lib/stubs/libcuda.so" ]; then
  cargo fetch --quiet
  sys=$(ls -d "$HOME"/.cargo/registry/src/*/cudarc-0.19.*/src/driver/sys 2>/dev/null | sort | tail -n 1)
  [ -n "$sys" ] || { echo "build_cuda: cudarc sources not found in the cargo registry" >&2; exit 1; }
  mkdir -p "$CU/lib/stubs"
  grep -rhoE '\bcu[A-Z][A-Za-z0-9_]*\b' "$sys" | sort -u | awk '{ print "void " $1 "(void) {}" }' > "$ROOT/cuda_stub.c"
  gcc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$CU/lib/stubs/libcuda.so" "$ROOT/cuda_stub.c"
fi

export PATH=$CU/bin:$PATH CUDA_HOME=$CU CUDA_PATH=$CU CUDA_COMPUTE_CAP=$COMPUTE_CAP CUDARC_CUDA_VERSION=13000
export LIBRARY_PATH=$CU/lib:$CU/lib/stubs${LIBRARY_PATH:+:$LIBRARY_PATH}
# The binaries also look for the CUDA libraries in lib/ beside them and in ../lib (a folder
# laid out as bin/ + lib/), before the system's paths; LD_LIBRARY_PATH still comes first.
export RUSTFLAGS="${RUSTFLAGS:+$RUSTFLAGS }-C link-arg=-Wl,-rpath,\$ORIGIN/lib:\$ORIGIN/../lib"
cargo build --release --features cuda --target-dir target/cuda "$@"
echo "build_cuda: done; run-time libraries (except the driver's libcuda.so.1) are in $CU/lib" >&2
