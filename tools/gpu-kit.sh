#!/usr/bin/env bash
# Packs the benchmark into .gpu/ (ignored; about 35 MB) for a machine with a real GPU and nothing else: no Node,
# no npm, no network. What it holds: the bench as one ESM file (tools/gpu-kit.config.mjs), the `webgpu`
# package's loader and its Dawn binary (xz), the bundled models and datasets, this machine's Node (xz), and
# Debian's Vulkan loader (libvulkan1, a .deb). docs/real-gpu.md says how to run it there.
# Usage: tools/gpu-kit.sh [--try]
#   --try  also runs the kit's `training` section here on lavapipe, from the kit alone (no node_modules), then
#          removes what that run unpacked: the check that the kit is whole before a GPU's minutes are spent on it.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
k=.gpu/kit
say() { echo "[gpu-kit] $*" >&2; }

rm -rf .gpu
mkdir -p $k/node_modules/webgpu/dist/linux-x64 $k/public .gpu/debs
say "bundling bench/main.ts"
npx vite build -c tools/gpu-kit.config.mjs >&2
printf "const m = await import('./.gpu/bench/main.mjs');\nawait m.main(process.argv.slice(2));\nprocess.exit(0);\n" > $k/run.mjs
# the commit the figures come from (the kit has no git)
echo "$(git rev-parse --short HEAD)$(git status --porcelain --untracked-files=no | grep -q . && echo +dirty)" > $k/COMMIT
say "webgpu's loader and Dawn (xz)"
cp node_modules/webgpu/index.js node_modules/webgpu/package.json $k/node_modules/webgpu/
xz -T2 -c node_modules/webgpu/dist/linux-x64/dawn.node > $k/node_modules/webgpu/dist/linux-x64/dawn.node.xz
cp -r public/models public/datasets $k/public/
say "Node (xz)"
xz -T2 -c "$(command -v node)" > .gpu/node.xz
say "Debian's Vulkan loader (libvulkan1), from this machine's apt sources"
lists=$(mktemp -d)
mkdir -p "$lists/partial"
apt_o=(-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 "-oDir::State::Lists=$lists")
apt-get "${apt_o[@]}" update >/dev/null
(cd .gpu/debs && apt-get "${apt_o[@]}" download libvulkan1 >/dev/null)
rm -rf "$lists"
say "kit: $(du -sh .gpu | cut -f1) in .gpu/"

if [ "${1:-}" = --try ]; then
  say "trying the kit on lavapipe (training section)"
  xz -dc $k/node_modules/webgpu/dist/linux-x64/dawn.node.xz > $k/node_modules/webgpu/dist/linux-x64/dawn.node
  mkdir -p $k/.cache && cp -r .cache/lavapipe .cache/lavapipe_icd.json $k/.cache/
  status=0
  (cd $k && WEBLORA_DRIVER=lavapipe WEBLORA_COMMIT=$(cat COMMIT) node run.mjs training) || status=$?
  rm -rf $k/.cache $k/node_modules/webgpu/dist/linux-x64/dawn.node $k/.gpu/bench/results $k/bench
  [ $status = 0 ] || { say "the kit failed on lavapipe (exit $status)"; exit $status; }
  say "the kit ran on lavapipe"
fi
