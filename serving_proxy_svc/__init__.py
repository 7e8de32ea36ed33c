"""The serving proxy: hot-load LoRA adapters into running vLLM servers and compare them with the base model."""
