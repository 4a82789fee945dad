# labels: name::yolov8n author::ultralytics task::Computer_Vision test_group::real
"""Ultralytics YOLOv8n built from its yaml (random weights, no download), one 640x640 image."""
import torch
from ultralytics import YOLO

torch.manual_seed(0)
detector = YOLO("yolov8n.yaml").model.eval()
image = torch.rand(1, 3, 640, 640)

with torch.no_grad():
    predictions = detector(image)
print("Predictions:", tuple(predictions[0].shape))
