# labels: name::multiple_invocations author::turnkey test_group::b
"""One model called with two input shapes: two invocations, each with its own hash."""
import torch

torch.manual_seed(0)


class SmallModel(torch.nn.Module):
    def __init__(self, input_size, output_size):
        super().__init__()
        self.fc = torch.nn.Linear(input_size, output_size)

    def forward(self, x):
        return self.fc(x)


pytorch_model = SmallModel(12, 5)
for batch_size in (1, 2):
    for _ in range(3):
        outputs = pytorch_model(x=torch.rand(batch_size, 12))
print("Last output shape:", tuple(outputs.shape))
