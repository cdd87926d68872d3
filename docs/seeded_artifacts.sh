#!/usr/bin/env bash
# Seeded jobs through the service, and the SHA-256 of every artifact they write: the check that a refactoring
# changes no output. Each revision runs from a temporary git worktree, in this environment (the packages the
# venv has installed), with `studio serve --local` on the embedded default model, one thread.
#
#   bash docs/seeded_artifacts.sh REV_A [REV_B]     # e.g. HEAD~3 HEAD; prints one line per artifact
#
# The jobs: text-to-image with guidance, text-to-video (9 frames), a two-step storyboard with clips and guidance,
# then a caption and a continuation of the generated video and an inpainting of the generated image.
set -euo pipefail
repo=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
python=${PYTHON:-python}
work=$(mktemp -d)
servers=()
cleanup() {
  for pid in "${servers[@]}"; do kill "$pid" 2>/dev/null || true; done
  for tree in "$work"/tree-*; do [ -d "$tree" ] && git -C "$repo" worktree remove --force "$tree" >/dev/null 2>&1; done
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { "$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

run_jobs() {  # run_jobs REV OUT: the jobs on REV; OUT/hashes.txt lists "sha256  job/artifact"
  local rev=$1 out=$2 tree port server
  tree="$work/tree-$(basename "$out")"
  git -C "$repo" worktree add --detach --force "$tree" "$rev" >/dev/null 2>&1
  mkdir -p "$out/media" "$out/fetch"
  port=$(free_port)
  server="http://127.0.0.1:$port"
  (cd "$tree" && PYTHONPATH="$tree" OMP_NUM_THREADS=1 exec "$python" -m studio.cli serve --local --port "$port" \
     --data-dir "$out/data" --media-root "$out/media" >"$out/serve.log" 2>&1) &
  servers+=($!)
  for _ in $(seq 120); do curl -sf "$server/healthz" >/dev/null && break; sleep 0.5; done
  job() {
    local name=$1 id
    shift
    id=$(cd "$tree" && PYTHONPATH="$tree" "$python" -m studio.cli submit --server "$server" "$@" --wait 2>/dev/null \
         | "$python" -c 'import json, sys; print(json.load(sys.stdin)["id"])')
    (cd "$tree" && PYTHONPATH="$tree" "$python" -m studio.cli fetch --server "$server" "$id" --out "$out/fetch/$name" >/dev/null)
  }
  job t2i t2i -p prompt="a red square on the left" -p guidance_scale=2.0 --seed 7
  job t2v t2v -p prompt="a blue circle moves right" -p num_frames=9 --seed 3
  job story storyboard -p question="how do i build a tower with a red square and a blue circle ?" -p num_steps=2 \
      -p clip_frames=5 -p guidance_scale=1.5 --seed 1
  cp "$out/fetch/t2v/video.mp4" "$out/media/clip.mp4"
  cp "$out/fetch/t2i/image.png" "$out/media/image.png"
  job caption caption -p video="$out/media/clip.mp4" --seed 2
  job continue continue_video -p video="$out/media/clip.mp4" -p prompt="a blue circle moves right" -p new_frames=4 --seed 5
  job inpaint inpaint -p image="$out/media/image.png" -p prompt="a green triangle" -p box="[0,0,0.5,0.5]" --seed 4
  (cd "$out/fetch" && find . -type f | sort | xargs sha256sum) >"$out/hashes.txt"
}

[ $# -ge 1 ] || { echo "usage: $0 REV_A [REV_B]" >&2; exit 2; }
run_jobs "$1" "$work/a"
if [ $# -lt 2 ]; then cat "$work/a/hashes.txt"; exit 0; fi
run_jobs "$2" "$work/b"
"$python" - "$work/a/hashes.txt" "$work/b/hashes.txt" "$1" "$2" <<'EOF'
import sys

def read(path):
    return {name.removeprefix("./"): digest for digest, name in (line.split() for line in open(path))}

a, b = read(sys.argv[1]), read(sys.argv[2])
same = 0
for name in sorted(a.keys() | b.keys()):
    if name not in a or name not in b:
        print(f"{name:28s} only in {sys.argv[3] if name in a else sys.argv[4]}")
    elif a[name] != b[name]:
        print(f"{name:28s} differs")
    else:
        same += 1
        print(f"{name:28s} identical")
print(f"{same} of {len(a.keys() | b.keys())} artifacts byte-identical between {sys.argv[3]} and {sys.argv[4]}")
EOF
