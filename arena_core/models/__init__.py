"""What a model is: backbone loading, precision, quantisation, LoRA, where backbones come from, and run directories."""

from arena_core.models.noise import quiet_library_noise

# Before any module of this wing imports peft or bitsandbytes (their noise starts at import).
quiet_library_noise()
