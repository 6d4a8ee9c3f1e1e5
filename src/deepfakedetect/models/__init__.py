"""Models: backbones, weights (safetensors only), the Hub, precision, preprocessing, calibration."""
