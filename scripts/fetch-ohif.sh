#!/usr/bin/env bash
# Unpack OHIF Viewer's built dist/ (npm @ohif/app) for the viewer tests (tests/test_ohif_viewer.py), once per
# version, into a cache folder outside git:  scripts/fetch-ohif.sh CACHE VERSION...  ->  CACHE/VERSION/package/dist
# About 50 MB downloaded and 200 MB unpacked per version; a version already unpacked is not fetched again.
set -euo pipefail
cache="$1"; shift
if ! command -v npm >/dev/null; then
  echo "warning: npm is missing, so the OHIF viewer tests will be skipped (apt-get install npm, then make ohif)" >&2
  exit 0
fi
for version in "$@"; do
  dest="$cache/$version"
  [ -f "$dest/package/dist/index.html" ] && continue
  echo "fetching OHIF $version (npm pack @ohif/app@$version) into $dest"
  tmp="$(mktemp -d)"
  (cd "$tmp" && npm pack --silent "@ohif/app@$version" >/dev/null)
  mkdir -p "$tmp/unpacked"
  tar xzf "$tmp"/ohif-app-"$version".tgz -C "$tmp/unpacked"
  test -f "$tmp/unpacked/package/dist/index.html"
  rm -rf "$dest" && mkdir -p "$cache" && mv "$tmp/unpacked" "$dest"
  rm -rf "$tmp"
done
