"""The compressed artifact: one file that rebuilds the evaluated network, and nothing else.

The bytes a record reports are ``len`` of this file and its accuracy is that of the model
decoded from it (``docs/bytes.md``). Nothing is pickled. The byte layout is documented and
defined in ``bench.artifact.format``; ``encode``/``save`` write it, ``decode``/``load`` read it.
"""

from bench.artifact.codecs import lossless
from bench.artifact.decode import decode, load
from bench.artifact.encode import ArtifactInfo, encode, save
from bench.artifact.format import (
    FORMAT_VERSION,
    MAGIC,
    RANDOM_WEIGHT_CONVENTIONS,
    VALUE_CODECS,
    RandomWeightConvention,
    ValueCodec,
)

__all__ = [
    "FORMAT_VERSION",
    "MAGIC",
    "RANDOM_WEIGHT_CONVENTIONS",
    "VALUE_CODECS",
    "ArtifactInfo",
    "RandomWeightConvention",
    "ValueCodec",
    "decode",
    "encode",
    "load",
    "lossless",
    "save",
]
