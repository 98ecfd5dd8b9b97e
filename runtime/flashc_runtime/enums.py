"""Closed sets a resource config chooses from: GPU pools, CPU instance types, scaler strategies."""

from __future__ import annotations

from enum import Enum

__all__ = ["CpuInstanceType", "GpuGroup", "ServerlessScalerType"]


class _StrEnum(str, Enum):
    """A str enum whose str() and format() are its value on every Python version.

    (Python 3.11 changed format() of mixed-in enums; names built with f-strings must not depend on it.)
    """

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)


class GpuGroup(_StrEnum):
    """GPU pools a worker may be scheduled on."""

    ANY = "any"
    ADA_24 = "ADA_24"
    ADA_32_PRO = "ADA_32_PRO"
    ADA_48_PRO = "ADA_48_PRO"
    ADA_80_PRO = "ADA_80_PRO"
    AMPERE_16 = "AMPERE_16"
    AMPERE_24 = "AMPERE_24"
    AMPERE_48 = "AMPERE_48"
    AMPERE_80 = "AMPERE_80"
    HOPPER_141 = "HOPPER_141"
    BLACKWELL_96 = "BLACKWELL_96"
    BLACKWELL_180 = "BLACKWELL_180"


class CpuInstanceType(_StrEnum):
    """CPU worker shapes: generation, family (g general, c compute), vCPUs, GB of RAM."""

    CPU3G_1_4 = "cpu3g-1-4"
    CPU3G_2_8 = "cpu3g-2-8"
    CPU3G_4_16 = "cpu3g-4-16"
    CPU3G_8_32 = "cpu3g-8-32"
    CPU3C_1_2 = "cpu3c-1-2"
    CPU3C_2_4 = "cpu3c-2-4"
    CPU3C_4_8 = "cpu3c-4-8"
    CPU3C_8_16 = "cpu3c-8-16"
    CPU5C_1_2 = "cpu5c-1-2"
    CPU5C_2_4 = "cpu5c-2-4"
    CPU5C_4_8 = "cpu5c-4-8"
    CPU5C_8_16 = "cpu5c-8-16"
    # The seed's examples name these two shapes as well.
    CPU5C_4_16 = "cpu5c-4-16"
    CPU5G_2_8 = "cpu5g-2-8"


class ServerlessScalerType(_StrEnum):
    """How an endpoint decides to add workers."""

    QUEUE_DELAY = "QUEUE_DELAY"
    REQUEST_COUNT = "REQUEST_COUNT"
