"""Make an untrained rank-8 LoRA adapter for the converted SmolLM2, for vLLM to serve.

Runs in the vLLM venv (it has torch, transformers and peft). peft initialises lora_B to zero,
which would make the adapter a no-op, and the test must see the adapter change the output: it
is set to seeded random values large enough to change a greedy answer (0.05 sometimes did not).

Usage: python tests/vllm/make_lora.py BASE_MODEL_DIR OUT_DIR
"""

import sys

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM

base, out = sys.argv[1], sys.argv[2]
model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
config = LoraConfig(
    r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], lora_dropout=0.0, task_type="CAUSAL_LM"
)
torch.manual_seed(0)  # peft draws lora_A from the global generator: the same adapter every run
peft_model = get_peft_model(model, config)
generator = torch.Generator().manual_seed(0)
with torch.no_grad():
    for name, param in peft_model.named_parameters():
        if "lora_B" in name:
            param.copy_(torch.randn(param.shape, generator=generator) * 0.2)
peft_model.save_pretrained(out)
print(out)
