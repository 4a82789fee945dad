# labels: name::detr author::huggingface task::Computer_Vision test_group::real
"""DETR object detection (ResNet-50 backbone, random weights, no download), one 480x640 image.

Built from transformers configs only: `ResNetConfig` for the backbone instead of a timm or
pretrained one, so nothing is fetched from a hub.
"""
import torch
from transformers import DetrConfig, DetrForObjectDetection, ResNetConfig

torch.manual_seed(0)
backbone = ResNetConfig(out_features=["stage4"])  # ResNet-50 layout
config = DetrConfig(backbone_config=backbone, use_pretrained_backbone=False)
detector = DetrForObjectDetection(config).eval()
pixel_values = torch.rand(1, 3, 480, 640)

with torch.no_grad():
    outputs = detector(pixel_values=pixel_values)
print("Boxes:", tuple(outputs.pred_boxes.shape), "logits:", tuple(outputs.logits.shape))
