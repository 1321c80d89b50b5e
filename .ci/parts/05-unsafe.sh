#!/usr/bin/env bash
# `unsafe` lives only in the dispatch module (src/dispatch/): the crate denies `unsafe_code`
# (Cargo.toml [lints]) and only src/dispatch/mod.rs allows it; this check keeps any other
# module from opting out.
set -euo pipefail
if grep -rn "unsafe" src/ | grep -v "^src/dispatch/"; then
    echo "FAIL: 'unsafe' outside src/dispatch/"
    exit 1
fi
echo "ok: 'unsafe' appears only in src/dispatch/"
