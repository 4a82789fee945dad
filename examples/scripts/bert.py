# labels: name::bert author::huggingface task::Natural_Language_Processing test_group::real
"""BERT-base from its default config (random weights), called with keyword inputs.

Reads TurnkeyML-style flags: tk bert.py --script-args "--batch_size 2 --max_seq_length 64"
"""
import torch
from transformers import BertConfig, BertModel

from turnkey_like.parser import parse

batch_size, max_seq_length = parse(["batch_size", "max_seq_length"])

torch.manual_seed(0)
config = BertConfig()
model = BertModel(config).eval()
input_ids = torch.randint(1, config.vocab_size, (batch_size, max_seq_length))
attention_mask = torch.ones(batch_size, max_seq_length, dtype=torch.long)

with torch.no_grad():
    outputs = model(input_ids=input_ids, attention_mask=attention_mask)
print("Last hidden state:", tuple(outputs.last_hidden_state.shape))
