#!/bin/bash
# bench/devcopy.sh: refreshes /work/main/.devcopy (git-ignored there; a device `run` sends
# /work/main) from this worktree: the tracked and untracked-not-ignored files, leaving the carried
# deps/ and shared/ folders in place (OLD=rev: that revision of the repository too, at old/). Then: run carry [".devcopy"], `cd .devcopy && bash bench/cuda_run.sh`.
set -eu
src=$(cd "$(dirname "$0")/.." && pwd)
dst=${DEVCOPY:-/work/main/.devcopy}
mkdir -p "$dst"
find "$dst" -mindepth 1 -maxdepth 1 ! -name deps ! -name shared -exec rm -rf {} +
(cd "$src" && git ls-files -co --exclude-standard -z | tar --null -T - -cf -) | (cd "$dst" && tar -xf -)
if [ -n "${OLD:-}" ]; then # a second tree at old/ (cuda_run.sh OLD=old): git revision OLD of this repo
  mkdir -p "$dst/old" && (cd "$src" && git archive "$OLD") | (cd "$dst/old" && tar -xf -)
fi
[ -d "$dst/deps/lib" ] || bash "$src/bench/mkdeps.sh" "$dst/deps" > /dev/null
[ -d "$dst/shared/models" ] || { mkdir -p "$dst/shared"; cp -r /work/shared/models "$dst/shared/"; }
du -sh "$dst"
