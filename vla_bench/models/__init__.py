"""Torch models behind the model policies: the Seer teacher, the VITA-VLA student, and their
checkpoint format. Importing this package needs torch and transformers."""

from vla_bench.models.checkpoint import ARCHITECTURES, CheckpointConfig, ExpectedProtocol, from_pretrained, read_config

__all__ = ["ARCHITECTURES", "CheckpointConfig", "ExpectedProtocol", "from_pretrained", "read_config"]
