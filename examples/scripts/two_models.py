# labels: name::two_models author::turnkey test_group::a
"""Two models in one script; select one by its hash:

    tk two_models.py::c69b7dea
"""
import torch

torch.manual_seed(0)


class SmallModel(torch.nn.Module):
    def __init__(self, input_size, output_size):
        super().__init__()
        self.fc = torch.nn.Linear(input_size, output_size)

    def forward(self, x):
        return self.fc(x)


pytorch_model = SmallModel(10, 5)
another_pytorch_model = SmallModel(50, 10)

pytorch_outputs = pytorch_model(x=torch.rand(10))
more_pytorch_outputs = another_pytorch_model(x=torch.rand(50))
print("Outputs:", pytorch_outputs.shape, more_pytorch_outputs.shape)
