"""What a model is: backbone loading, precision, quantisation, LoRA, where backbones come from, and run directories."""
