#!/usr/bin/env bash
# Pins the Dockerfile's base images to the digests their tags point at now: every
# `ARG <NAME>_IMAGE=name:tag[@sha256:…]` line becomes `name:tag@sha256:<digest>`, the digest of the
# multi-platform index (so one pin serves linux/amd64 and linux/arm64). Run it for each release and after
# changing a tag, review the diff, commit it. Needs registry access through crane or docker buildx.
#
# Usage: scripts/pin-base-images.sh [--check] [DOCKERFILE]   (default: the repository's Dockerfile)
#   --check   changes nothing; lists the images without a digest and exits 1 if there are any.
set -euo pipefail

check=false
if [ "${1:-}" = --check ]; then
  check=true
  shift
fi
dockerfile="${1:-$(dirname "$0")/../Dockerfile}"
[ -f "$dockerfile" ] || { echo "$dockerfile: no such file — fix: pass the Dockerfile's path" >&2; exit 2; }

image_arg='^ARG ([A-Z0-9_]+_IMAGE)=(.*)$'
digest_re='^sha256:[0-9a-f]{64}$'

# The digest a tag points at now, as the registry reports it (the index for a multi-platform image).
resolve() {
  local ref="$1" digest
  if command -v crane >/dev/null 2>&1; then
    digest="$(crane digest "$ref")"
  elif docker buildx version >/dev/null 2>&1; then
    digest="$(docker buildx imagetools inspect --format '{{json .Manifest}}' "$ref" | grep -o '"digest": *"sha256:[0-9a-f]*"' | head -n 1 | grep -o 'sha256:[0-9a-f]*')"
  else
    echo "neither crane nor docker buildx is installed — fix: install one (and log in to the registries)" >&2
    return 1
  fi
  [[ "$digest" =~ $digest_re ]] || { echo "$ref: got \"$digest\", not a sha256 digest" >&2; return 1; }
  printf '%s\n' "$digest"
}

found=0
unpinned=0
out="$(mktemp)"
trap 'rm -f "$out"' EXIT
while IFS= read -r line || [ -n "$line" ]; do
  if [[ "$line" =~ $image_arg ]]; then
    name="${BASH_REMATCH[1]}"
    value="${BASH_REMATCH[2]}"
    ref="${value%%@*}"
    found=$((found + 1))
    if [[ "$ref" == *'$'* || "$ref" != *:* ]]; then
      echo "$name=$value: write the image as a literal name:tag — fix: edit the ARG line" >&2
      exit 2
    fi
    if $check; then
      if ! [[ "$value" == *@* && "${value#*@}" =~ $digest_re ]]; then
        echo "$name=$value is not pinned" >&2
        unpinned=$((unpinned + 1))
      fi
    else
      digest="$(resolve "$ref")"
      line="ARG $name=$ref@$digest"
      echo "$name: $ref@$digest" >&2
    fi
  fi
  printf '%s\n' "$line" >> "$out"
done < "$dockerfile"

[ "$found" -gt 0 ] || { echo "$dockerfile: no ARG *_IMAGE lines — nothing to pin" >&2; exit 2; }
if $check; then
  [ "$unpinned" -eq 0 ] || { echo "fix: run scripts/pin-base-images.sh (needs registry access) and commit the result" >&2; exit 1; }
  exit 0
fi
cat "$out" > "$dockerfile"
