# labels: name::classify_then_caption author::turnkey task::Multimodal test_group::real
"""A small two-model pipeline: a ResNet-18 classifies an image, then a 2-layer GPT-2 greedily
extends the top-3 class ids by three tokens. The decoder runs once per generated token, each time
with a longer sequence, so it shows up with three invocations."""
import torch
import torchvision
from transformers import GPT2Config, GPT2LMHeadModel

torch.manual_seed(0)
classifier = torchvision.models.resnet18(weights=None).eval()
decoder = GPT2LMHeadModel(GPT2Config(n_layer=2, n_head=4, n_embd=256, vocab_size=1000, bos_token_id=0, eos_token_id=0)).eval()

image = torch.rand(1, 3, 224, 224)
with torch.no_grad():
    logits = classifier(image)
    tokens = logits.topk(3).indices  # (1, 3) class ids double as token ids (vocab 1000)
    for _ in range(3):
        next_token = decoder(input_ids=tokens, use_cache=False).logits[:, -1].argmax(-1, keepdim=True)
        tokens = torch.cat([tokens, next_token], dim=1)
print("Generated ids:", tokens.tolist())
