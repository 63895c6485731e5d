#!/usr/bin/env bash
# Installs what WebLoRA needs on a Debian 12 machine, idempotently:
#   npm packages, the software Vulkan drivers (lavapipe from bookworm-backports, unpacked into
#   .cache/lavapipe, and SwiftShader from Debian's chromium) and Chromium for browser tests.
# Usage: tools/setup.sh [test|studio]
#   studio: npm packages only (the page runs on the browser's own WebGPU).
#   test:   everything the test suite and the benchmark need.
# A second run does nothing but checks (< 1 s).
set -euo pipefail
mode=${1:-test}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

say() { echo "[setup] $*" >&2; }
die() { echo "[setup] ERROR: $*" >&2; exit 1; }

# --- Node ---------------------------------------------------------------------------------------
command -v node >/dev/null || die "Node.js is missing: install Node 20 or newer (Debian 12's own nodejs is 18)"
node_major=$(node -p 'process.versions.node.split(".")[0]')
[ "$node_major" -ge 20 ] || die "Node $(node -v) is too old: WebLoRA needs Node 20 or newer (vite 8, webgpu 0.6.2)"

# --- npm packages ---------------------------------------------------------------------------
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "installing npm packages (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error >&2
fi

[ "$mode" = studio ] && exit 0

# --- Debian packages --------------------------------------------------------------------------
# libvulkan1 + mesa-vulkan-drivers bring the loader and lavapipe's libraries (LLVM);
# chromium brings SwiftShader's Vulkan ICD and the browser for the end-to-end tests.
need_pkgs=()
for p in libvulkan1 mesa-vulkan-drivers chromium; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need_pkgs+=("$p")
done
if [ ${#need_pkgs[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    die "missing Debian packages: ${need_pkgs[*]}. Install them as root: apt-get install -y ${need_pkgs[*]}"
  fi
  say "installing Debian packages: ${need_pkgs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2 || true
  apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >&2
fi

# --- lavapipe from bookworm-backports (Debian 12's own Mesa 22 is rejected by Dawn) -----------
lvp_dir="$root/.cache/lavapipe"
lvp_so="$lvp_dir/usr/lib/x86_64-linux-gnu/libvulkan_lvp.so"
if [ ! -f "$lvp_so" ]; then
  command -v apt-get >/dev/null || die "cannot fetch lavapipe without apt-get; copy libvulkan_lvp.so from a Mesa >= 24 mesa-vulkan-drivers package to $lvp_so and run this again (it writes .cache/lavapipe_icd.json for it)"
  # The mirror comes from the machine's own apt sources, never a hard-coded host.
  mirror=""
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    mirror=$(awk '/^URIs:/ {print $2; exit}' "$f")
    [ -n "$mirror" ] && break
  done
  if [ -z "$mirror" ] && [ -f /etc/apt/sources.list ]; then
    mirror=$(awk '$1=="deb" && $0 !~ /security/ { for (i=2;i<=NF;i++) if ($i ~ /^(http|https|file):/) { print $i; exit } }' /etc/apt/sources.list)
  fi
  [ -n "$mirror" ] || die "no Debian mirror found in /etc/apt/sources.list*; cannot fetch mesa-vulkan-drivers from bookworm-backports"
  say "fetching mesa-vulkan-drivers from bookworm-backports ($mirror)"
  apt_dir="$root/.cache/apt-backports"
  mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$lvp_dir"
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror bookworm-backports main" > "$apt_dir/sources.list"
  apt_opts=(-o Dir::Etc::SourceList="$apt_dir/sources.list" -o Dir::Etc::SourceParts=/dev/null
            -o Dir::State::Lists="$apt_dir/lists" -o Dir::Cache="$apt_dir/cache" -o APT::Architecture=amd64)
  apt-get "${apt_opts[@]}" update -qq >&2
  (cd "$apt_dir" && rm -f mesa-vulkan-drivers_*.deb && apt-get "${apt_opts[@]}" download -t bookworm-backports mesa-vulkan-drivers >&2)
  dpkg -x "$apt_dir"/mesa-vulkan-drivers_*.deb "$lvp_dir"
  [ -f "$lvp_so" ] || die "libvulkan_lvp.so not found in the backports package"
fi
cat > "$root/.cache/lavapipe_icd.json" <<EOF
{"file_format_version":"1.0.1","ICD":{"library_path":"$lvp_so","api_version":"1.4.305"}}
EOF

[ -f /usr/lib/chromium/vk_swiftshader_icd.json ] || die "SwiftShader ICD missing: /usr/lib/chromium/vk_swiftshader_icd.json (apt-get install -y chromium)"
mkdir -p "$root/.cache/mesa-shader-cache" "$root/.cache/xdg"
chmod 700 "$root/.cache/xdg"
exit 0
