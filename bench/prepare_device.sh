#!/usr/bin/env bash
# Run here, before a device call: fetch the wheels the GPU image lacks (bench/device_packages.txt,
# at this .venv's versions, for the image's Python 3.12 on x86-64) into .device/wheels. The seed's
# step (pretrain/tools/bench_seed.py) travels with the tree. .device/ is ignored by git; the device
# call carries it:  run(command="bash bench/gpu_check.sh", carry=[".device"])
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/pip ] || { echo "error: no .venv here; run the README's install command first" >&2; exit 2; }
names=$(grep -v '^#' bench/device_packages.txt | tr '\n' '|' | sed 's/|$//')
pins=$(.venv/bin/pip freeze 2>/dev/null | grep -iE "^($names)==" || true)
[ "$(echo "$pins" | grep -c .)" = "$(grep -vc '^#' bench/device_packages.txt)" ] || {
  echo "error: .venv lacks some of bench/device_packages.txt (found: $(echo $pins))" >&2; exit 2; }
rm -rf .device && mkdir -p .device/wheels
if ! log=$(python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .device/wheels $pins 2>&1); then
  echo "$log" | grep -v "is ignored: it is neither" >&2; echo "error: pip could not fetch the wheels above" >&2; exit 2
fi
echo "ready: $(ls .device/wheels | wc -l) wheels, $(du -sh .device | cut -f1) in .device/ (the call's limit is 64 MiB with the tree)"
