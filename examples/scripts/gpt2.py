# labels: name::gpt2 author::huggingface task::Generative_AI test_group::real
"""GPT-2 (124M) from its default config (random weights), one forward over 128 tokens."""
import torch
from transformers import GPT2Config, GPT2Model

torch.manual_seed(0)
config = GPT2Config()
model = GPT2Model(config).eval()
input_ids = torch.randint(1, config.vocab_size, (1, 128))
attention_mask = torch.ones(1, 128, dtype=torch.long)

with torch.no_grad():
    outputs = model(input_ids, attention_mask=attention_mask, use_cache=False)
print("Last hidden state:", tuple(outputs.last_hidden_state.shape))
