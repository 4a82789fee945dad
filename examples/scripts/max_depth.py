# labels: name::max_depth author::turnkey test_group::b
"""A model with submodules; see them with:

    tk max_depth.py --max-depth 1 --analyze-only
"""
import torch

torch.manual_seed(0)


class TwoLayerModel(torch.nn.Module):
    def __init__(self, input_size, output_size):
        super().__init__()
        self.fc = torch.nn.Linear(input_size, output_size)
        self.fc2 = torch.nn.Linear(output_size, output_size)

    def forward(self, x):
        return self.fc2(self.fc(x))


pytorch_model = TwoLayerModel(10, 5)
inputs = {"x": torch.rand(10)}
pytorch_outputs = pytorch_model(**inputs)
print("Output:", pytorch_outputs)
