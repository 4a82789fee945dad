# labels: name::resnet50 author::torchvision task::Computer_Vision test_group::real
"""torchvision ResNet-50 (random weights, built offline), one image of 224x224."""
import torch
import torchvision

torch.manual_seed(0)
model = torchvision.models.resnet50(weights=None).eval()
images = torch.rand(1, 3, 224, 224)

with torch.no_grad():
    logits = model(images)
print("Top class:", int(logits.argmax()))
